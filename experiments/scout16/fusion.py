# ruff: noqa: E501, E741  (session 8 scouting script, kept as run for provenance)
"""Decode-time fusion of a trained cnn-rnn (or cnn-br) with linear-br, on dev, 2-fold cross-fitted.

linear-br (TF-IDF + LinearSVC, its defaults; or logreg) is fitted on the train split. cnn-rnn:
every decoding step's label logits get + beta * s_l, s = the SVC margin (or log p of logreg);
rules: greedy, EOS shift, tau stop, beam-5/10 marginals + one global threshold. cnn-br:
logit(p_cnn) + beta * s, one global threshold. beta and each rule's parameter are chosen
jointly on the other dev half (halves as scout/decisions.py). Also linear-br alone.

    taskset -c 1 env PYTHONPATH=/work/wt16 python scout/fusion.py --dataset cooking_se \
        --rnn scout/runs/cooking_rnn_s0/0 --br scout/runs/cooking_se_wide_s0/1 --out scout/results/fusion.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from decisions import beam_all, path_distributions, stop_lengths  # noqa: E402
from tune_dev import split  # noqa: E402

import mlgen  # noqa: E402
from mlgen import registry  # noqa: E402
from mlgen.config import BaselineConfig, ModelConfig, TrainConfig  # noqa: E402
from mlgen.data.vocab import EOS_ID, NUM_SPECIAL  # noqa: E402
from mlgen.eval import metrics, thresholds  # noqa: E402

BETAS_SVC = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0)
BETAS_LOG = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0)
GAMMAS = (0.0, 0.05, 0.1, 0.2, 0.4, 0.7, 1.0, 2.0)
import os  # noqa: E402

if os.environ.get("FUSION_GAMMAS"):  # grid-edge check: e.g. FUSION_GAMMAS=0,0.5,1,2,3,5,8
    GAMMAS = tuple(float(g) for g in os.environ["FUSION_GAMMAS"].split(","))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--rnn")
    ap.add_argument("--br")
    ap.add_argument("--out", required=True)
    ap.add_argument("--classifier", default="svc", choices=("svc", "logreg"))
    ap.add_argument("--beams", default="5")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    train, dev = split(args.dataset, "random")
    t0 = time.perf_counter()
    lin = registry.fit(
        "linear-br", train, dev, ModelConfig(), TrainConfig(), BaselineConfig(classifier=args.classifier), verbose=0
    )
    lin_seconds = round(time.perf_counter() - t0, 1)
    lin_scores = lin.scores(dev.texts)
    svc = lin_scores if args.classifier == "svc" else np.log(np.clip(lin_scores, 1e-6, 1))
    betas = BETAS_SVC if args.classifier == "svc" else BETAS_LOG
    n = len(dev)
    gold = dev.label_sets
    halves = np.random.default_rng(0).permutation(n) % 2
    records = []

    def setup(names, vocab):
        known = vocab.drop_unknown(gold)
        y = vocab.to_multi_hot(known).astype(bool)
        missed_row = np.array([len(set(gold[i])) - len(set(known[i])) for i in range(n)])
        return y, missed_row

    def emit(sets, model_type, rule, param, names, extra=None):
        m = metrics.evaluate(gold, sets, names)
        r = {
            "dataset": args.dataset,
            "tag": args.tag,
            "model_type": model_type,
            "classifier": args.classifier,
            "rule": rule,
            "micro_f1": round(m["micro_f1"], 4),
            "P": round(m["micro_precision"], 4),
            "R": round(m["micro_recall"], 4),
            "subset_acc": round(m["subset_accuracy"], 4),
            "macro_f1": round(m["macro_f1"], 4),
            "mean_labels": round(float(np.mean([len(s) for s in sets])), 3),
            "gold_mean_labels": round(float(np.mean([len(set(s)) for s in gold])), 3),
            "param_per_half": param,
            "linear_seconds": lin_seconds,
        }
        if extra:
            r.update(extra)
        print(json.dumps(r), flush=True)
        records.append(r)

    def crossfit_family(cands, y, missed_row, vocab):
        """cands: {key: list of label sets}; pick per half the key best on the other half."""
        hot = {k: vocab.to_multi_hot(v).astype(bool) for k, v in cands.items()}

        def f1(k, rows):
            p, t = hot[k][rows], y[rows]
            return 2.0 * np.count_nonzero(p & t) / (p.sum() + t.sum() + missed_row[rows].sum())

        chosen = {}
        for h in (0, 1):
            other = np.flatnonzero(halves != h)
            chosen[h] = max(cands, key=lambda k: f1(k, other))
        return [cands[chosen[halves[i]]][i] for i in range(n)], [chosen[0], chosen[1]]

    def crossfit_scores(S_by_beta, y, missed_row, names):
        """S_by_beta: {beta: scores (n, labels)}: per half, tune a threshold per beta on the
        other half and keep the beta with the best other-half F1."""
        pick = np.zeros_like(y)
        chosen = {}
        for h in (0, 1):
            other = np.flatnonzero(halves != h)
            best = None
            for beta, S in S_by_beta.items():
                thr = thresholds.tune(S[other], y[other], False, True, missed_row[other].sum())
                p = thresholds.apply(S[other], thr, True)
                f = 2.0 * np.count_nonzero(p & y[other]) / (p.sum() + y[other].sum() + missed_row[other].sum())
                if best is None or f > best[0]:
                    best = (f, beta, thr)
            chosen[h] = best[1:]
            rows = np.flatnonzero(halves == h)
            pick[rows] = thresholds.apply(S_by_beta[best[1]][rows], best[2], True)
        return [[names[j] for j in np.flatnonzero(p)] for p in pick], [[c[0], float(c[1])] for c in chosen.values()]

    # linear-br alone
    y, missed_row = setup(lin.labels, lin.vocab)
    sets, par = crossfit_scores({0: lin_scores}, y, missed_row, lin.labels)
    emit(sets, "linear-br", "threshold_crossfit", par, lin.labels)

    if args.br:
        br = mlgen.load(args.br)
        col = [lin.labels.index(l) for l in br.labels]
        p = np.clip(br.scores(dev.texts), 1e-7, 1 - 1e-7)
        z = np.log(p) - np.log1p(-p)
        y, missed_row = setup(br.labels, br.vocab)
        S = {b: z + b * svc[:, col] for b in betas}
        sets, par = crossfit_scores({0.0: S[0.0]}, y, missed_row, br.labels)
        emit(sets, "cnn-br", "threshold_crossfit(no fusion)", par, br.labels)
        sets, par = crossfit_scores(S, y, missed_row, br.labels)
        emit(sets, "cnn-br", "fusion+threshold_crossfit", par, br.labels)
        # the same score mix cnn-rnn gets: sigmoid(fused logit) + gamma * sigmoid(svc margin)
        sig = 1.0 / (1.0 + np.exp(-svc[:, col]))
        mixed = {(b, g): 1.0 / (1.0 + np.exp(-S[b])) + g * sig for b in S for g in GAMMAS}
        sets, par = crossfit_scores(mixed, y, missed_row, br.labels)
        emit(sets, "cnn-br", "fusion+sigmoid+gamma*sigmoid(svc)_threshold_crossfit", par, br.labels)

    if args.rnn:
        pred = mlgen.load(args.rnn)
        model, names, vocab = pred.model, pred.labels, pred.vocab
        y, missed_row = setup(names, vocab)
        col = [lin.labels.index(l) for l in names]
        V = model.num_label_ids
        fams = {"greedy": {}, "eos": {}, "tau": {}}
        marg_by = {int(b): {} for b in args.beams.split(",")}
        for beta in betas:
            prior = np.zeros((n, V), np.float32)
            prior[:, NUM_SPECIAL:] = beta * svc[:, col]
            probs, ids = path_distributions(model, dev.texts, prior=prior)
            best_p = np.take_along_axis(probs, ids[:, :, None], axis=2)[:, :, 0]
            eos_p = probs[:, :, EOS_ID]

            def sets_of(lengths):
                return [[names[ids[i, t] - NUM_SPECIAL] for t in range(lengths[i])] for i in range(n)]

            fams["greedy"][beta] = sets_of(stop_lengths(best_p, eos_p, model.min_labels, "eos", 0.0))
            for b in np.arange(-3.0, 1.01, 0.25):
                fams["eos"][(beta, round(float(b), 2))] = sets_of(
                    stop_lengths(best_p, eos_p, model.min_labels, "eos", b)
                )
            for tau in np.arange(0.04, 0.8, 0.04):
                fams["tau"][(beta, round(float(tau), 2))] = sets_of(
                    stop_lengths(best_p, eos_p, model.min_labels, "tau", tau)
                )
            for beam in marg_by:
                bids, bscores = beam_all(model, dev.texts, beam, prior=prior)
                w = np.exp(bscores - bscores.max(axis=1, keepdims=True))
                w /= w.sum(axis=1, keepdims=True)
                marg = np.zeros((n, len(names)))
                for k in range(beam):
                    hit = np.zeros((n, V))
                    np.put_along_axis(hit, bids[:, k, :], 1.0, axis=1)
                    marg += w[:, k : k + 1] * hit[:, NUM_SPECIAL:]
                marg_by[beam][beta] = marg
            print(f"beta {beta} decoded", file=sys.stderr, flush=True)
        g0 = fams["greedy"][0.0]
        emit(g0, "cnn-rnn", "greedy(no fusion)", None, names)
        for fam, cands in fams.items():
            sets, par = crossfit_family(cands, y, missed_row, vocab)
            emit(
                sets, "cnn-rnn", f"fusion+{fam}_crossfit", [list(p) if isinstance(p, tuple) else p for p in par], names
            )
        for beam, S in marg_by.items():
            sets, par = crossfit_scores({0.0: S[0.0]}, y, missed_row, names)
            emit(sets, "cnn-rnn", f"beam{beam}_marginal_threshold_crossfit(no fusion)", par, names)
            sets, par = crossfit_scores(S, y, missed_row, names)
            emit(sets, "cnn-rnn", f"fusion+beam{beam}_marginal_threshold_crossfit", par, names)
            # marginals plus gamma * sigmoid(svc margin): labels outside the beam can still be recalled
            sig = 1.0 / (1.0 + np.exp(-svc[:, col]))
            mixed = {(b, g): S[b] + g * sig for b in S for g in GAMMAS}
            sets, par = crossfit_scores(mixed, y, missed_row, names)
            emit(sets, "cnn-rnn", f"fusion+beam{beam}_marginal+gamma*sigmoid(svc)_threshold_crossfit", par, names)
    with open(args.out, "a") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
