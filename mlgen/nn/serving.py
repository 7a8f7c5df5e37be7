"""A trained model as a TensorFlow SavedModel: raw strings in, label names out, all in the graph.

`serving_default(texts)` takes a batch of strings `(batch,)` and returns `labels` (string
`(batch, k)`, padded with ""), `scores` (float32 `(batch, k)`, 0 after the labels) and
`num_labels` (int32 `(batch,)`), `k` the most labels in the batch, and, for a model with a
calibration fitted on dev, `probabilities` (float32 `(batch, num_labels)`: every label's, what
`predict_proba` gives, columns in the order of the module's `label_names` variable, which is the
run folder's label vocabulary's). It is the very function
`predict` runs (`mlgen.nn.prediction.PredictionGraph.function`: the text vectorizer, the
network, the search, the linear-br ensemble's TF-IDF and margins, the decision rule with its
fitted numbers), with the label names looked up, so TF Serving, TFX or any
`tf.saved_model.load` runs the model without mlgen.
"""

from __future__ import annotations

import tensorflow as tf

from mlgen.nn.prediction import SIGNATURE


class Serving(tf.Module):
    """What `save` writes: `serve(texts)`, `function`'s outputs with label names, and the objects
    it uses (`tracked`: the network, the TF-IDF tables) so that their variables and tables are saved.

    Args:
        function: a compiled prediction function (`PredictionGraph.function`).
        labels: the label names, one per column.
    """

    def __init__(self, function, labels, tracked: dict):
        super().__init__(name="mlgen")
        for name, value in tracked.items():
            setattr(self, name, value)
        names = tf.constant(list(labels))
        self.label_names = tf.Variable(names, trainable=False, name="label_names")

        def serve(texts):
            outputs = function(texts)
            ids = outputs["label_ids"]
            served = {
                "labels": tf.where(ids >= 0, tf.gather(names, tf.maximum(ids, 0)), ""),
                "scores": outputs["scores"],
                "num_labels": outputs["num_labels"],
            }
            if "probabilities" in outputs:
                served["probabilities"] = outputs["probabilities"]
            return served

        self.serve = tf.function(serve, input_signature=SIGNATURE, autograph=False)


def module(graph, rule, labels, ranking=None, calibration=None) -> Serving:
    """`graph`'s prediction function of `rule` (`mlgen.nn.prediction.PredictionGraph`) as a `Serving`,
    with the `probabilities` of `ranking`'s scores by `calibration` when both are given."""
    if calibration is None:
        ranking = None
    tracked = {"model": graph.model} if graph.model is not None else {}
    if rule.uses_linear or (ranking is not None and ranking.uses_linear) or graph.model is None:
        tracked["linear"] = graph.linear()
    return Serving(graph.function(rule, ranking, calibration=calibration), labels, tracked)


def save(module: Serving, folder) -> None:
    """Writes `module` as a SavedModel whose `serving_default` signature is `module.serve`."""
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve.get_concrete_function()})
