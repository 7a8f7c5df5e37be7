"""Predictions and timings of one run folder on Reuters-21578's test split, as JSON.

Run it with two checkouts on the same folder to see that they predict alike (issue 17):

    git worktree add ../old ae59e80
    PYTHONPATH=../old python -m mlgen train --dataset reuters21578 --out /tmp/old_reuters
    PYTHONPATH=../old python experiments/predict_folder.py /tmp/old_reuters /tmp/old.json
    python experiments/predict_folder.py /tmp/old_reuters /tmp/new.json

Each rule (`default`: the one fitted on dev; `mode`: greedy; `beam5`) gets its label sets,
scores and seconds (after a 64-document warm-up call that compiles).
"""

import json
import sys
import time

import mlgen
from mlgen import datasets

CALLS = {"default": {}, "mode": {"decision": "mode"}, "beam5": {"decision": "mode", "beam_size": 5}}


def main(folder: str, out: str) -> None:
    texts = datasets.read("reuters21578", "test").texts
    predictor = mlgen.load(folder)
    result = {"mlgen": mlgen.__file__}
    for name, options in CALLS.items():
        predictor.predict(texts[:64], **options)
        started = time.perf_counter()
        predictions = predictor.predict_scores(texts, **options)
        result[name] = {
            "seconds": time.perf_counter() - started,
            "labels": [p.labels for p in predictions],
            "scores": [p.scores for p in predictions],
        }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(*sys.argv[1:3])
