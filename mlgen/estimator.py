"""A scikit-learn-style estimator around the one training loop, for training from Python."""

from __future__ import annotations

from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from mlgen.config import SECTIONS, BaselineConfig, ModelConfig, TrainConfig
from mlgen.data import from_lists
from mlgen.errors import InputError
from mlgen.registry import fit, get

MODEL_TYPE = get("cnn-rnn")


class LabelSequenceClassifier(BaseEstimator):
    """CNN-RNN multi-label classifier: `fit(texts, label_sets)`, `predict(texts)`.

    Every field `mlgen train --model cnn-rnn` reads (`MODEL_TYPE.fields()`: all of
    `ModelConfig` and `TrainConfig`, and the linear-br ensemble's `BaselineConfig`
    fields) is a constructor argument with the same name and default (see `mlgen train
    --help`; `tests/test_estimator.py` checks that they cannot drift apart);
    `get_params`/`set_params`/`clone` work as in scikit-learn.

    Args:
        allow_empty_labels: accept documents with an empty label set (as the CSV
            reader's `--allow-empty-labels`).
        verbose: Keras verbosity during `fit`.

    `fit` checks texts and label sets by the CSV reader's rules (`mlgen.data.from_lists`):
    labels are stripped, empty texts are refused, and so are empty label sets unless
    `allow_empty_labels`.

    Attributes:
        predictor_: the fitted `mlgen.predictors.cnn_rnn.SequencePredictor` (save it with `save`).
        classes_: the label vocabulary's labels.

    Example:
        >>> clf = LabelSequenceClassifier(epochs=5).fit(texts, label_sets)
        >>> clf.predict(["wheat exports rose"])
        [['wheat', 'grain']]
    """

    def __init__(
        self,
        max_tokens=ModelConfig.max_tokens,
        sequence_length=ModelConfig.sequence_length,
        embedding_dim=ModelConfig.embedding_dim,
        filter_sizes=ModelConfig.filter_sizes,
        num_filters=ModelConfig.num_filters,
        dropout=ModelConfig.dropout,
        word_dropout=ModelConfig.word_dropout,
        cell=ModelConfig.cell,
        decoder_units=ModelConfig.decoder_units,
        decoder_layers=ModelConfig.decoder_layers,
        context=ModelConfig.context,
        attention=ModelConfig.attention,
        scheduled_sampling=ModelConfig.scheduled_sampling,
        sampling_rate=ModelConfig.sampling_rate,
        label_embedding_dim=ModelConfig.label_embedding_dim,
        max_labels=ModelConfig.max_labels,
        min_labels=ModelConfig.min_labels,
        label_loss_weight=ModelConfig.label_loss_weight,
        beam_size=ModelConfig.beam_size,
        decision=ModelConfig.decision,
        tune_eos_bias=ModelConfig.tune_eos_bias,
        label_order=ModelConfig.label_order,
        loss=ModelConfig.loss,
        feedback=ModelConfig.feedback,
        ensemble=ModelConfig.ensemble,
        epochs=TrainConfig.epochs,
        batch_size=TrainConfig.batch_size,
        learning_rate=TrainConfig.learning_rate,
        clipnorm=TrainConfig.clipnorm,
        ema_momentum=TrainConfig.ema_momentum,
        patience=TrainConfig.patience,
        seed=TrainConfig.seed,
        dev_fraction=TrainConfig.dev_fraction,
        embeddings=TrainConfig.embeddings,
        classifier=BaselineConfig.classifier,
        C=BaselineConfig.C,
        ngram_max=BaselineConfig.ngram_max,
        min_df=BaselineConfig.min_df,
        sublinear_tf=BaselineConfig.sublinear_tf,
        allow_empty_labels=False,
        verbose=0,
    ):
        self.max_tokens = max_tokens
        self.sequence_length = sequence_length
        self.embedding_dim = embedding_dim
        self.filter_sizes = filter_sizes
        self.num_filters = num_filters
        self.dropout = dropout
        self.word_dropout = word_dropout
        self.cell = cell
        self.decoder_units = decoder_units
        self.decoder_layers = decoder_layers
        self.context = context
        self.attention = attention
        self.scheduled_sampling = scheduled_sampling
        self.sampling_rate = sampling_rate
        self.label_embedding_dim = label_embedding_dim
        self.max_labels = max_labels
        self.min_labels = min_labels
        self.label_loss_weight = label_loss_weight
        self.beam_size = beam_size
        self.decision = decision
        self.tune_eos_bias = tune_eos_bias
        self.label_order = label_order
        self.loss = loss
        self.feedback = feedback
        self.ensemble = ensemble
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.clipnorm = clipnorm
        self.ema_momentum = ema_momentum
        self.patience = patience
        self.seed = seed
        self.dev_fraction = dev_fraction
        self.embeddings = embeddings
        self.classifier = classifier
        self.C = C
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf
        self.allow_empty_labels = allow_empty_labels
        self.verbose = verbose

    def _configs(self) -> dict:
        """`{section: config}` from the parameters (the fields this type does not read keep their defaults)."""
        params = self.get_params()
        fields = MODEL_TYPE.fields(params["ensemble"])
        return {
            section: cls(**{name: params[name] for name in fields.get(section, ()) if name in params})
            for section, cls in SECTIONS.items()
        }

    def fit(self, texts, label_sets, dev_texts=None, dev_label_sets=None):
        """Trains on `texts` (strings) and `label_sets` (lists of label names); returns self.

        `dev_texts` and `dev_label_sets` (together, or neither) are dev data for early
        stopping; without them `dev_fraction` of the training data is held out.
        """
        if (dev_texts is None) != (dev_label_sets is None):
            raise InputError("fit: give dev_texts and dev_label_sets together, or neither")
        configs = self._configs()
        train = from_lists(texts, label_sets, "fit data", allow_empty_labels=self.allow_empty_labels)
        dev = None
        if dev_texts is not None:
            dev = from_lists(dev_texts, dev_label_sets, "dev data", allow_empty_labels=self.allow_empty_labels)
        self.predictor_ = fit(
            MODEL_TYPE.name, train, dev, configs["model"], configs["train"], configs["baseline"], verbose=self.verbose
        )
        self.classes_ = self.predictor_.labels
        self.history_ = self.predictor_.history
        return self

    def predict(self, texts) -> list[list[str]]:
        """The label set of each text, by the decision rule fitted on dev (`predictor_.decision`):
        generation order for the most probable sequence, highest score first for the marginal rule."""
        check_is_fitted(self, "predictor_")
        return self.predictor_.predict(texts)  # with the fitted beam_size and decision

    def predict_scores(self, texts):
        """Per text: labels and their scores (see `SequencePredictor.predict_scores`)."""
        check_is_fitted(self, "predictor_")
        return self.predictor_.predict_scores(texts)

    def explain(self, text: str):
        """Per predicted label, the attention weights over `text`'s tokens (`attention` models)."""
        check_is_fitted(self, "predictor_")
        return self.predictor_.explain(text, beam_size=self.beam_size)

    def save(self, folder) -> None:
        """Writes a run folder that `mlgen.load` and the CLI read."""
        check_is_fitted(self, "predictor_")
        self.predictor_.save(folder)
