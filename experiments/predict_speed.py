"""Predict docs/s of a saved cnn-rnn run folder against a saved cnn-br one on a bundled test split,
each with its fitted decision: best of 3 interleaved repeats after a warm-up call (what the issue 26
"what each change bought" rows measure, run on the same folders before and after a change).

    .venv/bin/python experiments/predict_speed.py runs/cooking-rnn runs/cooking-br cooking_se
"""

from __future__ import annotations

import argparse
import json

import mlgen
from mlgen.compare import timed_predict
from mlgen.data import datasets

REPEATS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cnn_rnn", help="cnn-rnn run folder")
    parser.add_argument("cnn_br", help="cnn-br run folder")
    parser.add_argument("dataset", help="bundled dataset whose test split is timed")
    args = parser.parse_args()
    texts = datasets.read(args.dataset, "test").texts
    models = {"cnn-rnn": mlgen.load(args.cnn_rnn), "cnn-br": mlgen.load(args.cnn_br)}
    best = dict.fromkeys(models, 0.0)
    for _ in range(REPEATS):  # interleaved, so a slow spell of the machine hits both
        for name, model in models.items():
            best[name] = max(best[name], timed_predict(model, texts)[1])
    print(json.dumps({**best, "cnn_rnn_vs_cnn_br": best["cnn-rnn"] / best["cnn-br"]}))


if __name__ == "__main__":
    main()
