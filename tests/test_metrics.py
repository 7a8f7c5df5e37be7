"""Metrics on hand-computed examples; thresholds tuned and applied."""

import numpy as np
import pytest

from mlgen.eval import metrics, thresholds

LABELS = ["a", "b", "c"]
GOLD = [["a", "b"], ["c"]]
PRED = [["a"], ["c", "d"]]  # "d" is outside the vocabulary: a false alarm, never dropped


def test_scores_match_hand_computed_values():
    scores = metrics.evaluate(GOLD, PRED, LABELS)
    # Micro: TP = 2 (a, c), FP = 1 (d), FN = 1 (b).
    assert scores["micro_precision"] == pytest.approx(2 / 3)
    assert scores["micro_recall"] == pytest.approx(2 / 3)
    assert scores["micro_f1"] == pytest.approx(2 / 3)
    assert scores["micro_jaccard"] == pytest.approx(2 / 4)
    # Columns a, b, c, d: F1 1, 0, 1, 0.
    assert scores["macro_f1"] == pytest.approx(0.5)
    assert scores["macro_precision"] == pytest.approx(0.5)  # 1, 0 (nothing predicted), 1, 0
    assert scores["macro_recall"] == pytest.approx(0.5)  # 1, 0, 1, 0 (no support)
    # Per document: {a} vs {a,b}: P 1, R 1/2; {c,d} vs {c}: P 1/2, R 1; both F1 2/3, Jaccard 1/2.
    assert scores["samples_precision"] == pytest.approx(0.75)
    assert scores["samples_recall"] == pytest.approx(0.75)
    assert scores["samples_f1"] == pytest.approx(2 / 3)
    assert scores["samples_jaccard"] == pytest.approx(0.5)
    assert scores["hamming_loss"] == pytest.approx(2 / 8)  # b and d wrong out of 2 docs x 4 columns
    assert scores["subset_accuracy"] == 0.0
    assert scores["n_docs"] == 2
    assert scores["unknown_predicted_labels"] == 1 and scores["unknown_gold_labels"] == 0
    assert set(metrics.SCORE_KEYS) <= set(scores)


def test_perfect_predictions_score_one():
    scores = metrics.evaluate(GOLD, GOLD, LABELS)
    assert scores["micro_f1"] == scores["samples_jaccard"] == scores["subset_accuracy"] == 1.0
    assert scores["hamming_loss"] == 0.0


def test_macro_averages_skip_labels_neither_gold_nor_predicted():
    vocabulary = [*LABELS, "never seen"]  # in the vocabulary, absent from this data
    assert metrics.evaluate(GOLD, GOLD, vocabulary)["macro_f1"] == 1.0
    assert metrics.evaluate(GOLD, PRED, vocabulary)["macro_f1"] == pytest.approx(0.5)  # a, b, c, d as above
    # A label with support but never predicted still counts, with F1 0.
    assert metrics.evaluate([["a"], ["b"]], [["a"], ["a"]], vocabulary)["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)


def test_per_label_table():
    table = metrics.per_label(GOLD, PRED, LABELS)
    assert list(table.columns) == list(metrics.PER_LABEL_COLUMNS)
    assert table["label"].tolist() == ["a", "b", "c", "d"]
    assert table["support"].tolist() == [1, 1, 1, 0]
    assert table["predicted"].tolist() == [1, 0, 1, 1]
    assert table["f1"].tolist() == [1.0, 0.0, 1.0, 0.0]


def test_format_scores_aligns_every_key():
    lines = metrics.format_scores(metrics.evaluate(GOLD, PRED, LABELS)).splitlines()
    assert [line.split()[0] for line in lines][: len(metrics.SCORE_KEYS)] == list(metrics.SCORE_KEYS)
    assert len({line.index(line.split()[1]) for line in lines}) == 1  # one value column
    assert lines[-1].split() == ["unknown_predicted_labels", "1"]


def test_apply_threshold_and_always_top():
    scores = np.array([[0.9, 0.2, 0.6], [0.1, 0.3, 0.2]])
    assert thresholds.apply(scores, 0.5).tolist() == [[True, False, True], [False, False, False]]
    assert thresholds.apply(scores, 0.5, always_top=True).tolist() == [[True, False, True], [False, True, False]]
    per_label = np.array([0.95, 0.25, 0.5])
    assert thresholds.apply(scores, per_label).tolist() == [[False, False, True], [False, True, False]]


def test_tune_finds_a_separating_threshold():
    rng = np.random.default_rng(0)
    y_true = rng.random((200, 5)) < 0.3
    scores = np.where(y_true, rng.uniform(0.4, 1.0, y_true.shape), rng.uniform(0.0, 0.35, y_true.shape))
    threshold = thresholds.tune(scores, y_true)
    assert scores[~y_true].max() < threshold < scores[y_true].min()
    assert thresholds.micro_f1(thresholds.apply(scores, threshold), y_true) == 1.0


def test_per_label_thresholds_fit_each_label():
    rng = np.random.default_rng(1)
    y_true = rng.random((300, 2)) < 0.4
    # Label 0 separates at 0.2, label 1 at 0.8: no single threshold is perfect.
    cuts = np.array([0.2, 0.8])
    scores = np.where(y_true, cuts + rng.uniform(0.01, 0.1, y_true.shape), cuts - rng.uniform(0.01, 0.1, y_true.shape))
    single = thresholds.tune(scores, y_true)
    assert thresholds.micro_f1(thresholds.apply(scores, single), y_true) < 1.0
    per_label = thresholds.tune(scores, y_true, per_label=True)
    assert per_label.shape == (2,)
    assert thresholds.micro_f1(thresholds.apply(scores, per_label), y_true) == 1.0


@pytest.mark.parametrize("always_top", [False, True])
def test_tuned_threshold_beats_every_other_cut(always_top):
    rng = np.random.default_rng(2)
    y_true = rng.random((60, 6)) < 0.25
    scores = y_true * 0.3 + rng.random(y_true.shape)  # overlapping classes
    best = thresholds.micro_f1(
        thresholds.apply(scores, thresholds.tune(scores, y_true, always_top=always_top), always_top), y_true
    )
    candidates = [*np.unique(scores), scores.max() + 1.0]  # every cut, and one above every score
    others = [thresholds.micro_f1(thresholds.apply(scores, t, always_top), y_true) for t in candidates]
    assert best == pytest.approx(max(others))


def test_tuned_threshold_handles_ties_and_float32_neighbours():
    # Tied top scores: only "nothing reaches it, keep each document's top label" is perfect.
    scores, truth = np.array([[0.5, 0.5], [0.9, 0.1]]), np.array([[1, 0], [1, 0]])
    threshold = thresholds.tune(scores, truth, always_top=True)
    assert thresholds.micro_f1(thresholds.apply(scores, threshold, always_top=True), truth) == 1.0
    # Adjacent float32 scores: the midpoint must not round onto the lower one.
    high = np.nextafter(np.float32(0.5), np.float32(1))
    scores32, truth = np.array([[high, np.float32(0.5)]], dtype=np.float32), np.array([[1, 0]])
    threshold = thresholds.tune(scores32, truth)
    assert thresholds.apply(scores32, threshold).tolist() == [[True, False]]


def test_gold_labels_outside_the_columns_count_as_misses_when_tuning():
    # Cut at 0.9: 1 of 1 right; at 0.6: 2 of 4. Equal F1 (2/3) with the two gold labels alone; with two
    # more gold labels that no column holds, the lower cut wins (2/5 against 4/8), as evaluate would score it.
    scores, truth = np.array([[0.9, 0.8, 0.7, 0.6]]), np.array([[1, 0, 0, 1]])
    assert thresholds.apply(scores, thresholds.tune(scores, truth)).sum() == 1
    assert thresholds.apply(scores, thresholds.tune(scores, truth, missed=2)).sum() == 4


def test_one_label_overall_is_scored_like_any_other_task():
    # scikit-learn reads a one-column indicator matrix as a binary target and refuses
    # sample-wise averages; a one-label vocabulary (one-class tagging) must still score.
    gold, pred = [["spam"], [], ["spam"], ["spam"]], [["spam"], ["spam"], [], ["spam"]]
    scores = metrics.evaluate(gold, pred, ["spam"])
    assert scores["micro_f1"] == pytest.approx(2 / 3) and scores["macro_f1"] == pytest.approx(2 / 3)
    assert scores["samples_f1"] == pytest.approx(0.5) and scores["subset_accuracy"] == pytest.approx(0.5)
    assert scores["hamming_loss"] == pytest.approx(0.5)  # 2 wrong cells of 4, the padding column not counted
    table = metrics.per_label(gold, pred, ["spam"])
    assert table["label"].tolist() == ["spam"] and table["support"].tolist() == [3]
    assert metrics.evaluate([["a"]] * 3, [["a"]] * 3, ["a"])["samples_f1"] == 1.0


def test_ranking_metrics_match_hand_computed_values():
    labels = ["a", "b", "c", "d", "e", "f"]
    scores = np.array([[0.9, 0.8, 0.1, 0.7, 0.0, 0.2], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])
    gold = [["a", "d"], ["b", "zz"]]  # "zz" is outside the columns: never ranked, still ideal
    result = metrics.ranking(gold, scores, labels)
    # Doc 1 ranks a, b, d, f, c, e: hits at 1 and 3. Doc 2 ranks f, e, d, c, b, a: b at rank 5.
    assert result["P@1"] == pytest.approx((1 + 0) / 2)
    assert result["P@3"] == pytest.approx((2 / 3 + 0) / 2)
    assert result["P@5"] == pytest.approx((2 / 5 + 1 / 5) / 2)
    d = 1 / np.log2(np.arange(2, 7))  # the discount at ranks 1..5
    ndcg3_doc1 = (d[0] + d[2]) / (d[0] + d[1])
    assert result["nDCG@3"] == pytest.approx((ndcg3_doc1 + 0) / 2)
    assert result["nDCG@5"] == pytest.approx((ndcg3_doc1 + d[4] / (d[0] + d[1])) / 2)


def test_ranking_of_perfect_scores_and_of_one_document():
    labels = ["a", "b", "c"]
    gold = [["a"], ["b", "c"]]
    perfect = metrics.ranking(gold, np.array([[1.0, 0, 0], [0, 1, 1]]), labels)
    assert perfect["P@1"] == 1 and perfect["nDCG@3"] == pytest.approx(1) and perfect["P@3"] == pytest.approx(0.5)
    one = metrics.ranking([["b"]], np.array([[0.5, 0.9, 0.1]]), labels)
    assert one["P@1"] == 1 and one["nDCG@5"] == pytest.approx(1)
    assert metrics.ranking([[]], np.array([[0.5, 0.9, 0.1]]), labels)["nDCG@3"] == 0
    with pytest.raises(ValueError, match="expected"):
        metrics.ranking(gold, np.zeros((2, 2)), labels)


def test_the_expected_calibration_error_bins_every_document_label_pair():
    labels = ["a", "b"]
    gold = [["a"], ["a", "b"], [], ["b"]]
    scores = np.array([[0.95, 0.05], [0.95, 0.05], [0.95, 0.05], [0.5, 0.55]])
    ece, table = metrics.calibration(gold, scores, labels, bins=10)
    # Bins: 0.0-0.1 holds three pairs (one gold), 0.5-0.6 two (one gold), 0.9-1.0 three (two gold).
    assert table["pairs"].tolist() == [3, 2, 3]
    assert table["frequency"].tolist() == pytest.approx([1 / 3, 1 / 2, 2 / 3])
    assert table["confidence"].tolist() == pytest.approx([0.05, 0.525, 0.95])
    expected = (3 * abs(1 / 3 - 0.05) + 2 * abs(0.5 - 0.525) + 3 * abs(2 / 3 - 0.95)) / 8
    assert ece == pytest.approx(expected)
    margins_ece, margins_table = metrics.calibration(gold, scores * 3 - 1, labels)
    assert margins_ece is None and margins_table.empty  # margins are not probabilities: no error
    assert metrics.calibration([["a"]], np.array([[1.0, 0.0]]), labels)[0] == 0.0
