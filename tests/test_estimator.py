"""The scikit-learn-style estimator."""

import numpy as np
import pytest
from conftest import TINY_MODEL
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import mlgen
from mlgen.data import read_labelled_csv
from mlgen.errors import InputError


def test_get_set_params_and_clone():
    clf = mlgen.LabelSequenceClassifier(cell="lstm", epochs=3)
    params = clf.get_params()
    assert params["cell"] == "lstm" and params["epochs"] == 3 and params["beam_size"] == 1
    clf.set_params(beam_size=4)
    assert clf.beam_size == 4
    assert clone(clf).get_params() == clf.get_params()


def test_predict_before_fit_raises():
    with pytest.raises(NotFittedError):
        mlgen.LabelSequenceClassifier().predict(["text"])


def test_fit_returns_self_and_predicts(tiny_csvs, tmp_path):
    train = read_labelled_csv(tiny_csvs["train"]).subset(range(150))
    dev = read_labelled_csv(tiny_csvs["dev"])
    params = {**TINY_MODEL, "sequence_length": 0}  # 0: chosen from the training texts
    clf = mlgen.LabelSequenceClassifier(**params, epochs=1, cell="simple", embeddings=None)
    assert clf.fit(train.texts, train.label_sets, dev.texts, dev.label_sets) is clf
    assert clf.get_params()["sequence_length"] == 0  # parameters stay as given, as in scikit-learn
    chosen = clf.predictor_.model_config.sequence_length
    assert chosen == clf.predictor_.model.sequence_length == max(len(t.split()) for t in train.texts) == 50
    predicted = clf.predict(dev.texts[:5])
    assert len(predicted) == 5 and all(set(p) <= set(clf.classes_) and p for p in predicted)
    clf.save(tmp_path / "run")
    assert mlgen.load(tmp_path / "run").predict(dev.texts[:5]) == predicted


def test_fit_input_errors():
    clf = mlgen.LabelSequenceClassifier()
    with pytest.raises(InputError, match="2 texts but 1 label sets"):
        clf.fit(["a", "b"], [["x"]])
    with pytest.raises(InputError, match="not one string"):
        clf.fit("a", [["x"]])
    with pytest.raises(InputError, match="fit data: item 0 is int 3, not a string"):
        clf.fit([3], [["x"]])
    with pytest.raises(InputError, match=r"label set 1 is the string 'acq'; give a list of labels, e.g. \['acq'\]"):
        clf.fit(["a", "b"], [["earn"], "acq"])
    with pytest.raises(InputError, match="label set 0 holds int 7, not a label name string"):
        clf.fit(["a"], [[7]])


def test_fit_collapses_duplicate_labels():
    from mlgen.data import from_lists

    assert from_lists(["a"], [("x", "y", "x")], "fit data").label_sets == [["x", "y"]]


def test_estimator_takes_the_decoder_variants_and_explains(tiny_csvs):
    train = read_labelled_csv(tiny_csvs["train"]).subset(range(120))
    params = {**TINY_MODEL, "attention": "dot", "context": "add", "decoder_layers": 2}
    clf = mlgen.LabelSequenceClassifier(**params, epochs=1, embeddings=None).fit(train.texts, train.label_sets)
    assert clf.get_params()["attention"] == "dot" and clf.predictor_.model.model_config.decoder_layers == 2
    explanation = clf.explain(train.texts[0])
    assert explanation.weights.shape == (len(explanation.labels), len(explanation.tokens))


def test_fit_and_predict_refuse_what_the_csv_reader_refuses():
    clf = mlgen.LabelSequenceClassifier()
    with pytest.raises(InputError, match="fit data: label set 1 is None"):
        clf.fit(["a", "b"], [["x"], None])
    with pytest.raises(InputError, match="give dev_texts and dev_label_sets together"):
        clf.fit(["a"], [["x"]], dev_texts=["b"])
    with pytest.raises(InputError, match="fit data: empty text at items 0"):
        clf.fit([""], [["x"]])
    with pytest.raises(InputError, match="fit data: empty labels at items 1; pass allow_empty_labels=True"):
        clf.fit(["a", "b"], [["x"], []])
    with pytest.raises(InputError, match="fit data: empty labels at items 0"):
        clf.fit(["a"], [[" ", ""]])


def test_fit_strips_labels_as_the_csv_reader_does(tiny_csvs):
    train = read_labelled_csv(tiny_csvs["train"]).subset(range(60))
    padded = [[f" {label} " for label in labels] for labels in train.label_sets]
    clf = mlgen.LabelSequenceClassifier(**TINY_MODEL, epochs=1, embeddings=None).fit(train.texts, padded)
    assert set(clf.classes_) <= {label for labels in train.label_sets for label in labels}


def test_predict_refuses_bad_texts_and_bad_beam_sizes(tiny_run):
    predictor, _ = tiny_run
    with pytest.raises(InputError, match=r"texts: item 0 is not valid Unicode text"):
        predictor.predict(["\ud800"])
    for beam_size in (2.5, "3", True):
        with pytest.raises(InputError, match="beam_size=.*: must be a whole number"):
            predictor.predict(["wheat"], beam_size=beam_size)
    with pytest.raises(InputError, match="max_labels=1.5: must be a whole number"):
        predictor.predict(["wheat"], max_labels=1.5)


@pytest.mark.parametrize(
    "name, model_type",
    [
        ("LabelSequenceClassifier", "cnn-rnn"),
        ("CNNBinaryRelevanceClassifier", "cnn-br"),
        ("LinearBinaryRelevanceClassifier", "linear-br"),
    ],
)
def test_parameters_are_the_fields_each_type_reads_with_the_configs_defaults(name, model_type):
    """The estimators' arguments (scikit-learn reads them from the signature) are the configs' fields."""
    import inspect

    from mlgen.config import SECTIONS
    from mlgen.registry import MODEL_TYPES

    estimator = getattr(mlgen, name)
    signature = inspect.signature(estimator.__init__)
    params = {name: p.default for name, p in signature.parameters.items() if name != "self"}
    fields = MODEL_TYPES[model_type].fields()  # with the default ensemble: the linear-br fields too
    expected = {name: getattr(SECTIONS[section](), name) for section, names in fields.items() for name in names}
    assert params == {**expected, "allow_empty_labels": False, "verbose": 0}
    assert estimator().get_params() == params
    with pytest.raises(TypeError, match="unexpected keyword arguments: bogus"):
        estimator(bogus=1)


def _check_scikit_learn_outputs(clf, texts, label_sets, scores):
    """`classes_`, the score matrix, the indicator matrix and `score` agree with scikit-learn's own."""
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    binarizer = MultiLabelBinarizer(classes=clf.classes_)
    predicted = binarizer.fit_transform(clf.predict(texts))
    np.testing.assert_array_equal(clf.predict_indicator(texts), predicted)
    assert scores.shape == (len(texts), len(clf.classes_)) and np.isfinite(scores).all()
    known = [[label for label in labels if label in set(clf.classes_)] for labels in label_sets]
    if all(len(k) == len(s) for k, s in zip(known, label_sets)):
        gold = binarizer.transform(label_sets)
        assert clf.score(texts, label_sets) == pytest.approx(f1_score(gold, predicted, average="micro"))


def test_the_sequence_and_cnn_br_estimators_score_as_scikit_learn_does(tiny_csvs):
    train = read_labelled_csv(tiny_csvs["train"]).subset(range(150))
    test = read_labelled_csv(tiny_csvs["test"]).subset(range(30))
    for estimator in (mlgen.LabelSequenceClassifier, mlgen.CNNBinaryRelevanceClassifier):
        clf = estimator(**_tiny_params(estimator), epochs=1, embeddings=None)  # TINY_MODEL: no ensemble
        clf.fit(train.texts, train.label_sets)
        probabilities = clf.predict_proba(test.texts)
        assert ((probabilities >= 0) & (probabilities <= 1 + 1e-6)).all()
        _check_scikit_learn_outputs(clf, test.texts, test.label_sets, probabilities)


def _tiny_params(estimator):
    """TINY_MODEL's fields that `estimator` takes."""
    names = estimator().get_params()
    return {name: value for name, value in TINY_MODEL.items() if name in names}


def test_grid_search_cross_validation_and_pipelines_work_on_label_sets(tiny_csvs):
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    train = read_labelled_csv(tiny_csvs["train"])
    test = read_labelled_csv(tiny_csvs["test"])
    search = GridSearchCV(mlgen.LinearBinaryRelevanceClassifier(), {"C": [0.01, 1.0]}, cv=2)
    search.fit(train.texts, train.label_sets)
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 2 and scores[0] != scores[1]
    assert search.best_params_ == {"C": [0.01, 1.0][int(np.argmax(scores))]}
    assert search.best_score_ == max(scores) and search.best_estimator_.C == search.best_params_["C"]
    clf = search.best_estimator_
    _check_scikit_learn_outputs(clf, test.texts, test.label_sets, clf.decision_function(test.texts))

    folds = cross_val_score(mlgen.LinearBinaryRelevanceClassifier(), train.texts, train.label_sets, cv=3)
    assert folds.shape == (3,) and ((folds > 0) & (folds <= 1)).all()
    pipeline = make_pipeline(FunctionTransformer(lambda texts: [t.lower() for t in texts]), clone(clf))
    pipeline.fit(train.texts, train.label_sets)
    assert pipeline.score(test.texts, test.label_sets) == pytest.approx(
        pipeline[-1].score([t.lower() for t in test.texts], test.label_sets)
    )
