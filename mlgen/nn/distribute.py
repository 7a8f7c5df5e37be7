"""Training on several workers with `tf.distribute.MultiWorkerMirroredStrategy`.

A `TF_CONFIG` in the environment that names more than one worker is honoured as
TensorFlow users expect: one process per worker, the same command in each; worker 0
is the chief, the only one that writes. Keras 3.15's `model.fit` needs two changes to
run under this strategy (keras-team/keras#20585; `experiments/multiworker_spike.py`),
which `CNNTextModel` applies only under it (`build_from_local_batch`, `vector_logs`).
"""

from __future__ import annotations

import json
import os

import tensorflow as tf


def cluster() -> dict:
    """`TF_CONFIG` as a dict (`{}` when unset or blank)."""
    return json.loads(os.environ.get("TF_CONFIG") or "{}")


def num_workers() -> int:
    """The workers `TF_CONFIG` names (1 without one)."""
    spec = cluster().get("cluster", {})
    return max(1, len(spec.get("worker", [])) + len(spec.get("chief", [])))


def is_chief() -> bool:
    """Whether this process writes the run: the `chief` task, or worker 0 when there is none."""
    config = cluster()
    task = config.get("task", {})
    if "chief" in config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("index", 0) == 0


_STRATEGY = None


def strategy():
    """The multi-worker strategy when `TF_CONFIG` names several workers, else None (one process).

    Created once per process, before the networks: TensorFlow needs it before other ops.
    """
    global _STRATEGY
    if _STRATEGY is None and num_workers() > 1:
        _STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()
    return _STRATEGY


def from_chief(values) -> list[float]:
    """The chief's `values` (floats), on every worker, the others passing as many zeros:
    one all-reduce, which every worker must call at the same point."""
    global _BROADCAST
    if _BROADCAST is None:
        distribute_strategy = strategy()

        @tf.function
        def broadcast(vector):
            return distribute_strategy.reduce("SUM", distribute_strategy.run(tf.identity, args=(vector,)), axis=None)

        _BROADCAST = broadcast
    return [float(v) for v in _BROADCAST(tf.constant(values, tf.float64)).numpy()]


_BROADCAST = None


def is_multi_worker(distribute_strategy) -> bool:
    return isinstance(distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy)


def local_batch(distribute_strategy, batch):
    """One replica's share of a distributed batch (what Keras builds the model from)."""
    local = distribute_strategy.experimental_local_results
    return tf.nest.map_structure(lambda v: local(v)[0] if isinstance(v, tf.distribute.DistributedValues) else v, batch)


def vector_logs(logs: dict) -> dict:
    """Step logs as shape `(1,)`: Keras reduces them along axis 0 across workers."""
    return {key: tf.reshape(value, (1,)) for key, value in logs.items()}
