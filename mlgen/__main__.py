"""`python -m mlgen ...` is `mlgen ...`."""

import sys

from mlgen.cli import main

sys.exit(main())
