"""The networks and everything TensorFlow: preprocessing, layers, the CNN backbone, the
label-sequence and binary-relevance networks, what they train on (targets), decoding,
inference, the one prediction path (prediction, with linear-br's TF-IDF as ops in tfidf), the
SavedModel export (serving) and the one training loop.

The only package that imports TensorFlow (and Keras). It imports them here, first, so
that `TF_CPP_MIN_LOG_LEVEL=3` (which the CLI sets unless the user set a level) means what
it says on every CPU: TensorFlow 2.21 writes some start-up lines straight to standard
error before its logging is initialised, whatever the level (absl's "All log messages
before absl::InitializeLog()" and, where oneDNN's custom operations are on, as on CPUs
with AVX-512, its `port.cc` notice). At level 3 those lines are taken out of what the
import printed (`quieted_lines` keeps them); everything else it printed (Python warnings,
errors) is written back.
Nothing about TensorFlow's numerics changes (`TF_ENABLE_ONEDNN_OPTS` is left alone).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

# A line of TensorFlow's C++ logging (`I0000 00:00:1796279308.297157    2369 port.cc:153] ...`),
# absl's notice that it logs before being initialised, and the second line of TensorFlow's
# CPU-feature notice.
_TF_LOG_LINE = re.compile(
    rb"[IWEF]\d{4} [\d:. ]+\d+ [\w.\-]+:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\."
)


# The lines `_import_tensorflow` took out of what TensorFlow's import printed.
quieted_lines: list[str] = []


def is_tensorflow_log_line(line: bytes) -> bool:
    """Whether `line` is one of TensorFlow's C++ log lines (or absl's start-up notice)."""
    return _TF_LOG_LINE.match(line.lstrip(b"\r")) is not None


def _import_tensorflow() -> None:
    """Imports TensorFlow and Keras, without their C++ start-up lines at log level 3."""
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip() != "3":
        import keras  # noqa: F401
        import tensorflow  # noqa: F401

        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = []
            for line in captured.read().splitlines(keepends=True):
                if is_tensorflow_log_line(line):
                    quieted_lines.append(line.decode(errors="replace").rstrip("\n"))
                else:
                    kept.append(line)
            if kept:
                os.write(2, b"".join(kept))


_import_tensorflow()
