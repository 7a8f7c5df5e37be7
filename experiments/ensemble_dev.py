"""Seed ensembles of cnn-rnn models, scored on a dev split (never test).

Is averaging several training seeds worth their training time? Members are run
folders trained on the same split (`tune_dev.py --save`). At every decoding step
the ensemble's next-label distribution combines the members' (`geometric`: the mean
of their log-probabilities, renormalised by the softmax inside the search;
`arithmetic`: the log of their mean probability), and the one greedy/beam search of
`mlgen.nn.decoding` runs over it. Every subset of two or more members is scored.

    .venv/bin/python experiments/tune_dev.py --dataset reuters21578 --dev-split tail --beam-sizes 1 \\
        --out /tmp/tail.jsonl --save runs/tail --configs '[{"seed": 0}, {"seed": 1}, {"seed": 2}]'
    .venv/bin/python experiments/ensemble_dev.py --dataset reuters21578 --dev-split tail \\
        --members runs/tail/0,runs/tail/1,runs/tail/2 --out experiments/results/ensemble_reuters_tail.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math

import numpy as np
import tensorflow as tf
from keras import ops
from tune_dev import split

import mlgen
from mlgen import datasets
from mlgen.data.vocab import NUM_SPECIAL
from mlgen.eval import metrics
from mlgen.nn import decoding, inference


def ensemble_generate(models, combine: str, beam_size: int = 1):
    """A compiled `texts (batch,) -> label ids (batch, max_labels + 1)` over the members' step functions."""
    first = models[0]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    def generate(texts):
        step_fns, states = zip(*(inference.step_function(m, m.text_vectorizer(texts), beam_size) for m in models))

        def step_fn(prev_ids, member_states, docs=None):
            outputs = [fn(prev_ids, s, docs) for fn, s in zip(step_fns, member_states)]
            log_probs = ops.stack([ops.log_softmax(logits, axis=-1) for logits, _ in outputs])  # (members, rows, ids)
            if combine == "geometric":
                combined = ops.mean(log_probs, axis=0)
            else:
                combined = ops.logsumexp(log_probs, axis=0) - math.log(len(models))
            return combined, tuple(s for _, s in outputs)

        ids, _, _ = decoding.search(
            step_fn,
            tuple(states),
            beam_size=beam_size,
            vocab_size=first.num_label_ids,
            max_labels=first.max_labels,
            min_labels=first.min_labels,
        )
        return ids

    return generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=datasets.DEFAULT, choices=datasets.names())
    parser.add_argument("--dev-split", choices=("random", "tail"), default="random")
    parser.add_argument("--members", required=True, help="comma-separated run folders trained on that split")
    parser.add_argument("--beam-size", type=int, default=1)
    parser.add_argument("--out", help="JSON file for the scores")
    args = parser.parse_args()
    _, dev = split(args.dataset, args.dev_split)
    folders = args.members.split(",")
    members = [mlgen.load(folder) for folder in folders]
    labels = members[0].labels
    if any(m.labels != labels for m in members):
        raise SystemExit("members have different label vocabularies: train them on the same split")

    def score(predicted) -> float:
        return round(metrics.evaluate(dev.label_sets, predicted, labels)["micro_f1"], 4)

    results = {"dataset": args.dataset, "dev_split": args.dev_split, "beam_size": args.beam_size, "members": {}}
    for folder, member in zip(folders, members):
        results["members"][folder] = score(member.predict(dev.texts, beam_size=args.beam_size))
    results["ensembles"] = []
    for size in range(2, len(members) + 1):
        for subset in itertools.combinations(range(len(members)), size):
            row = {"members": [folders[i] for i in subset]}
            row["mean_of_members"] = round(float(np.mean([results["members"][folders[i]] for i in subset])), 4)
            for combine in ("geometric", "arithmetic"):
                generate = ensemble_generate([members[i].model for i in subset], combine, args.beam_size)
                ids = np.concatenate(
                    [generate(tf.constant(dev.texts[i : i + 256])).numpy() for i in range(0, len(dev), 256)]
                )
                predicted = [[labels[j - NUM_SPECIAL] for j in row_ids if j >= NUM_SPECIAL] for row_ids in ids]
                row[combine] = score(predicted)
            results["ensembles"].append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
