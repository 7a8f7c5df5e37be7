# ruff: noqa: E501, E741  (session 8 scouting script, kept as run for provenance)
"""Decision rules on an already-trained cnn-rnn, scored on dev with 2-fold cross-fitting.

One greedy pass with EOS *banned* to max_labels records, at every step, the masked softmax
WITH EOS (the distribution greedy decoding chooses from). Since banning EOS does not change
the argmax among labels, the greedy path up to its stop is a prefix of this path, so:
  (a) greedy: stop at the first step (after min_labels) where EOS is the argmax;
  (b) EOS shift b: stop where logit_EOS + b > best label logit, i.e. p(EOS) e^b > p(best);
  (d) stop rule: keep emitting while p_t(best label) >= tau (d1: p with EOS in the softmax;
      d2: renormalised without EOS);
  (c) per-label scores, one global threshold with always_top (mlgen.thresholds.tune):
      c1 max_t p_t(l) over the whole path; c2 1 - prod_t (1 - p_t(l)); c3 beam-5 marginals
      (sum of normalised hypothesis probabilities containing l); c4 c1 restricted to the
      steps up to greedy stop + 1.
Halves: rng(0).permutation(n) % 2; each half gets the parameter tuned on the other.

    taskset -c 1 env PYTHONPATH=/work/wt16 python scout/decisions.py --run scout/runs/cooking_rnn_s0/0 \
        --dataset cooking_se --out scout/results/decisions.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

import tensorflow as tf  # noqa: E402
from tune_dev import split  # noqa: E402

import mlgen  # noqa: E402
from mlgen.data.vocab import BOS_ID, EOS_ID, NUM_SPECIAL, PAD_ID  # noqa: E402
from mlgen.eval import metrics, thresholds  # noqa: E402
from mlgen.nn import decoding, inference  # noqa: E402

NEG = -1e9


def path_distributions(model, texts, batch_size=512, prior=None):
    """(probs (n, T, V) masked softmax incl. EOS, path ids (n, T)) with EOS never chosen.
    T = max_labels. Labels already emitted, PAD and BOS are masked."""
    T = model.max_labels
    V = model.num_label_ids

    @tf.function(
        input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None, V], tf.float32)], autograph=False
    )
    def run(batch, extra):
        step_fn, state = inference.step_function(model, model.text_vectorizer(batch), 1)
        rows = tf.shape(batch)[0]
        cols = tf.range(V)
        banned = tf.where((cols == PAD_ID) | (cols == BOS_ID), NEG, 0.0)
        banned = tf.tile(banned[None, :], (rows, 1))
        prev = tf.fill((rows,), BOS_ID)
        all_probs, all_ids = [], []
        eos = tf.one_hot(EOS_ID, V) * NEG
        for t in range(T):
            logits, state = step_fn(prev, state)
            logits = tf.cast(logits, tf.float32) + banned + extra
            probs = tf.nn.softmax(logits, axis=-1)
            token = tf.cast(tf.argmax(logits + eos[None, :], axis=-1), tf.int32)
            all_probs.append(probs)
            all_ids.append(token)
            banned = tf.minimum(banned, NEG * tf.one_hot(token, V))
            prev = token
        return tf.stack(all_probs, 1), tf.stack(all_ids, 1)

    P, I = [], []
    prior = np.zeros((len(texts), V), np.float32) if prior is None else prior.astype(np.float32)
    for s in range(0, len(texts), batch_size):
        p, i = run(tf.constant([str(t) for t in texts[s : s + batch_size]]), prior[s : s + batch_size])
        P.append(p.numpy())
        I.append(i.numpy())
    return np.concatenate(P), np.concatenate(I)


def beam_all(model, texts, beam_size=5, batch_size=256, prior=None):
    """All beam hypotheses: ids (n, beam, T+1), scores (n, beam): mlgen.nn.decoding's BeamSearch
    strategy with every hypothesis returned. prior: (n, labels) added to every step's label logits."""
    V = model.num_label_ids
    L = V - NUM_SPECIAL
    max_labels, min_labels = model.max_labels, model.min_labels
    strategy = decoding.get("beam", beam_size=beam_size)

    @tf.function(
        input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None, L], tf.float32)], autograph=False
    )
    def run(texts_batch, extra):
        step_fn, state = inference.step_function(model, model.text_vectorizer(texts_batch), beam_size, extra)
        ids, _, scores = decoding.generate(
            step_fn, state, strategy, vocab_size=V, max_labels=max_labels, min_labels=min_labels, return_beams=True
        )
        return ids, scores

    ids, scores = [], []
    prior = np.zeros((len(texts), L), np.float32) if prior is None else prior.astype(np.float32)
    for s in range(0, len(texts), batch_size):
        i, sc = run(tf.constant([str(t) for t in texts[s : s + batch_size]]), prior[s : s + batch_size])
        ids.append(i.numpy())
        scores.append(sc.numpy())
    return np.concatenate(ids), np.concatenate(scores)


def stop_lengths(best_p, eos_p, min_labels, rule, param):
    """Number of labels per doc under a stop rule applied along the EOS-banned path.
    best_p, eos_p: (n, T). rule 'eos': stop at first t >= min_labels where eos_p*e^param > best_p.
    'tau': stop at first t >= min_labels where best_p < param. 'tau_norm': best_p/(1-eos_p) < param."""
    n, T = best_p.shape
    if rule == "eos":
        stop = eos_p * np.exp(param) > best_p
    elif rule == "tau":
        stop = best_p < param
    elif rule == "tau_norm":
        stop = best_p / np.maximum(1 - eos_p, 1e-12) < param
    stop[:, :min_labels] = False
    stop = np.concatenate([stop, np.ones((n, 1), bool)], axis=1)
    return np.argmax(stop, axis=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--beams", default="5")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    _, dev = split(args.dataset, "random")
    pred = mlgen.load(args.run)
    model = pred.model
    vocab = pred.vocab
    names = pred.labels
    n = len(dev)
    gold = dev.label_sets
    known = vocab.drop_unknown(gold)
    y = vocab.to_multi_hot(known).astype(bool)
    halves = np.random.default_rng(0).permutation(n) % 2
    missed_half = {h: sum(len(set(gold[i])) - len(set(known[i])) for i in np.flatnonzero(halves == h)) for h in (0, 1)}
    records = []
    missed_row = np.array([len(set(gold[i])) - len(set(known[i])) for i in range(n)])
    gold_mean = float(np.mean([len(set(s)) for s in gold]))

    def score(label_sets, rule, param=None, steps=None, seconds=None, extra=None):
        m = metrics.evaluate(gold, label_sets, names)
        rec = {
            "dataset": args.dataset,
            "run": args.run,
            "tag": args.tag,
            "rule": rule,
            "micro_f1": round(m["micro_f1"], 4),
            "P": round(m["micro_precision"], 4),
            "R": round(m["micro_recall"], 4),
            "subset_acc": round(m["subset_accuracy"], 4),
            "macro_f1": round(m["macro_f1"], 4),
            "mean_labels": round(float(np.mean([len(s) for s in label_sets])), 3),
            "gold_mean_labels": round(gold_mean, 3),
            "param_per_half": param,
            "decoder_steps_per_doc": steps,
            "seconds": seconds,
        }
        if extra:
            rec.update(extra)
        print(json.dumps(rec), flush=True)
        records.append(rec)

    def f1_of(label_sets, rows):
        rows = np.asarray(list(rows))
        pick = vocab.to_multi_hot([label_sets[i] for i in rows]).astype(bool)
        truth = y[rows]
        miss = missed_row[rows].sum()
        return 2.0 * np.count_nonzero(pick & truth) / (pick.sum() + truth.sum() + miss)

    # (a) greedy, the library path
    t0 = time.perf_counter()
    greedy = pred.predict(dev.texts)
    sec = round(time.perf_counter() - t0, 2)
    score(greedy, "a_greedy(library)", steps=round(float(np.mean([len(p) + 1 for p in greedy])), 3), seconds=sec)
    t0 = time.perf_counter()
    beam_lib = pred.predict(dev.texts, beam_size=5)
    score(beam_lib, "a_beam5(library)", seconds=round(time.perf_counter() - t0, 2))

    # The EOS-banned path
    t0 = time.perf_counter()
    probs, ids = path_distributions(model, dev.texts)
    path_sec = round(time.perf_counter() - t0, 2)
    T = ids.shape[1]
    best_p = np.take_along_axis(probs, ids[:, :, None], axis=2)[:, :, 0]
    eos_p = probs[:, :, EOS_ID]
    min_labels = model.min_labels

    def sets_from_lengths(lengths):
        return [[names[ids[i, t] - NUM_SPECIAL] for t in range(lengths[i])] for i in range(n)]

    L0 = stop_lengths(best_p, eos_p, min_labels, "eos", 0.0)
    g0 = sets_from_lengths(L0)
    agree = np.mean([set(a) == set(b) for a, b in zip(g0, greedy)])
    score(
        g0,
        "a_greedy(path reconstruction)",
        steps=round(float(np.mean(L0 + 1)), 3),
        extra={"agree_with_library": float(agree)},
    )

    def crossfit_stop(rule, grid):
        preds_by = {p: sets_from_lengths(stop_lengths(best_p, eos_p, min_labels, rule, p)) for p in grid}
        chosen = {}
        for h in (0, 1):
            other = np.flatnonzero(halves != h)
            chosen[h] = max(grid, key=lambda p: f1_of(preds_by[p], other))
        cross = [preds_by[chosen[halves[i]]][i] for i in range(n)]
        lengths = np.array([len(s) for s in cross])
        score(
            cross,
            f"{rule}_crossfit",
            param=[float(chosen[0]), float(chosen[1])],
            steps=round(float(np.mean(lengths + 1)), 3),
        )
        full = max(grid, key=lambda p: f1_of(preds_by[p], range(n)))
        score(preds_by[full], f"{rule}_tuned_on_all_dev(optimistic)", param=float(full))

    crossfit_stop("eos", [round(x, 2) for x in np.arange(-4.0, 2.01, 0.25)])
    crossfit_stop("tau", [round(x, 3) for x in np.arange(0.02, 0.9, 0.02)])
    crossfit_stop("tau_norm", [round(x, 3) for x in np.arange(0.02, 0.9, 0.02)])

    def crossfit_threshold(S, rule, steps=None):
        chosen = {}
        for h in (0, 1):
            other = np.flatnonzero(halves != h)
            chosen[h] = thresholds.tune(S[other], y[other], False, True, missed_half[1 - h])
        pick = np.zeros_like(y)
        for h in (0, 1):
            rows = np.flatnonzero(halves == h)
            pick[rows] = thresholds.apply(S[rows], chosen[h], True)
        sets = [[names[j] for j in np.flatnonzero(pick[i])] for i in range(n)]
        score(sets, f"{rule}_crossfit", param=[float(chosen[0]), float(chosen[1])], steps=steps)
        full = thresholds.tune(S, y, False, True, sum(missed_half.values()))
        pick = thresholds.apply(S, full, True)
        score(
            [[names[j] for j in np.flatnonzero(pick[i])] for i in range(n)],
            f"{rule}_tuned_on_all_dev(optimistic)",
            param=float(full),
        )

    lab = probs[:, :, NUM_SPECIAL:]  # (n, T, labels)
    crossfit_threshold(lab.max(axis=1), "c1_maxstep_fullpath", steps=T)
    crossfit_threshold(1 - np.prod(1 - lab, axis=1), "c2_noisyor_fullpath", steps=T)
    # c4: only the steps up to the greedy stop step (inclusive): as cheap as greedy
    upto = np.arange(T)[None, :] <= L0[:, None]  # steps 0..L0 (L0 = the EOS step)
    crossfit_threshold(
        (lab * upto[:, :, None]).max(axis=1),
        "c4_maxstep_greedysteps",
        steps=round(float(np.mean(np.minimum(L0 + 1, T))), 3),
    )
    # c5: greedy steps + 1 extra
    upto2 = np.arange(T)[None, :] <= L0[:, None] + 1
    crossfit_threshold(
        (lab * upto2[:, :, None]).max(axis=1),
        "c5_maxstep_greedysteps+1",
        steps=round(float(np.mean(np.minimum(L0 + 2, T))), 3),
    )
    # c6: first step only (like a BR on the decoder's first distribution, renormalised without EOS)
    crossfit_threshold(lab[:, 0, :], "c6_step0_only", steps=1)

    # c3: beam marginals
    beam_sec = {}
    for beam in map(int, args.beams.split(",")):
        t0 = time.perf_counter()
        bids, bscores = beam_all(model, dev.texts, beam)
        beam_sec[beam] = round(time.perf_counter() - t0, 2)
        w = np.exp(bscores - bscores.max(axis=1, keepdims=True))
        w = w / w.sum(axis=1, keepdims=True)
        marg = np.zeros((n, len(names)))
        for k in range(beam):
            hit = np.zeros((n, len(names) + NUM_SPECIAL))
            np.put_along_axis(hit, bids[:, k, :], 1.0, axis=1)
            marg += w[:, k : k + 1] * hit[:, NUM_SPECIAL:]
        crossfit_threshold(marg, f"c3_beam{beam}_marginal", steps=f"beam{beam}")
        # c8: average of beam marginal and c1
        crossfit_threshold(
            0.5 * marg + 0.5 * lab.max(axis=1), f"c8_mean(beam{beam}_marginal,c1)", steps=f"beam{beam}+T"
        )
        np.save(f"{args.run}/dev_beam{beam}_marginal.npy", marg)
    for r in records:
        r["path_seconds"] = path_sec
        r["beam_seconds"] = beam_sec
    with open(args.out, "a") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
