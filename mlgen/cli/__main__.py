"""`python -m mlgen.cli`, the same as `python -m mlgen` and `mlgen`."""

import sys

from mlgen.cli import main

sys.exit(main())
