"""Does the current code train and predict exactly as mlgen 0.2.0 did? (issue 17's proof)

Retrains the run folders of `tests/fixtures/runs_0.2.0` (one per model type, tiny, seed 0)
with the current code, by the script that wrote them, and compares everything they hold
with what 0.2.0 wrote: the predictions in `expected.json` (every decision rule, beam 3,
the attention explanation), `config.json` (but its `mlgen_version`), `decision.json` /
`thresholds.json`, the dev scores and every per-epoch log but the training speed.

    python experiments/same_training.py     # about a minute on one core

Float training is deterministic for one machine and thread count: the fixture was written
with both of this machine's cores free, and pinned to one core (`taskset -c 1`) cnn-rnn's
training rounds differently and its fitted decision moves. Another machine may round
differently too, which is why this is a benchmark and not a test (`tests/test_compat.py`
checks loading, which does not depend on it).
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "runs_0.2.0"


def load(path: Path):
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "runs"
        subprocess.run([sys.executable, str(FIXTURE / "make.py"), str(out)], check=True)
        rows = {"expected.json (predictions)": load(FIXTURE / "expected.json") == load(out / "expected.json")}
        for kind in ("cnn-rnn", "cnn-br", "linear-br"):
            old, new = FIXTURE / kind, out / kind
            configs = [load(folder / "config.json") for folder in (old, new)]
            for config in configs:
                config.pop("mlgen_version")
            rows[f"{kind} config.json"] = configs[0] == configs[1]
            for name in ("label_vocab.json", "decision.json", "thresholds.json"):
                if (old / name).is_file():
                    rows[f"{kind} {name}"] = load(old / name) == load(new / name)
            rows[f"{kind} dev scores"] = load(old / "metrics.json")["dev"] == load(new / "metrics.json")["dev"]
            histories = [load(folder / "history.json") for folder in (old, new)]
            for history in histories:
                history.pop("train_docs_per_s", None)
            rows[f"{kind} history (but speed)"] = histories[0] == histories[1]
    width = max(map(len, rows))
    for name, same in rows.items():
        print(f"{name:<{width}}  {'identical' if same else 'DIFFERS'}")
    results = ROOT / "experiments" / "results" / "same_training.json"
    results.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0 if all(rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
