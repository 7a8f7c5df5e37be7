"""Can Keras 3's `model.fit` train under `tf.distribute.MultiWorkerMirroredStrategy` here? (issue 18 groundwork)

    python experiments/multiworker_spike.py            # 2 worker processes on 127.0.0.1, a few seconds

Starts N worker processes on free localhost ports, each with its own `TF_CONFIG`, and
trains the same small subclassed Keras model with what mlgen's loop uses (Adam with a
moving average, `SwapEMAWeights`, validation data, `EarlyStopping` restoring the best
weights). Prints each worker's per-epoch losses and final weight sum: they must agree.

Keras 3.15 needs two changes to a subclassed model for this (keras-team/keras#20585):

- `_maybe_symbolic_build` reduces the first distributed batch with `strategy.reduce`,
  which a multi-worker strategy cannot do eagerly ("Attempt to convert a value
  (PerReplica ...)"): building from one replica's local batch works;
- `reduce_per_replica` reduces every log with `strategy.reduce("MEAN", v, axis=0)` under a
  multi-worker strategy, which fails on scalar losses ("Invalid reduction dimension 0");
  `train_step` and `test_step` returning logs of shape `(1,)` work.

`--unpatched` runs without them, to see the failures.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time


def worker(index: int, ports: list[int], patched: bool) -> None:
    os.environ["TF_CONFIG"] = json.dumps(
        {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    import tensorflow as tf

    started = time.perf_counter()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden, self.out = keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)

        def call(self, x):
            return self.out(self.hidden(x))

        if patched:

            def train_step(self, data):
                return {k: tf.reshape(v, (1,)) for k, v in super().train_step(data).items()}

            def test_step(self, data):
                return {k: tf.reshape(v, (1,)) for k, v in super().test_step(data).items()}

            def _maybe_symbolic_build(self, iterator=None, data_batch=None):
                if iterator is not None:
                    for _, _, batches in iterator:
                        local = self.distribute_strategy.experimental_local_results
                        data_batch = tf.nest.map_structure(
                            lambda v: local(v)[0] if isinstance(v, tf.distribute.DistributedValues) else v,
                            next(batches),
                        )
                        break
                with self.distribute_strategy.scope():
                    self._symbolic_build(data_batch=data_batch)

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((512, 8)).astype("float32")
    y = (x.sum(axis=1) > 4).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    with strategy.scope():
        model = Net()
        model.compile(
            keras.optimizers.Adam(1e-2, use_ema=True, ema_momentum=0.9), keras.losses.BinaryCrossentropy(True)
        )
    callbacks = [
        keras.callbacks.SwapEMAWeights(swap_on_epoch=True),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True),
    ]
    history = model.fit(data, validation_data=data, epochs=3, verbose=0, callbacks=callbacks)
    weights = float(sum(np.asarray(w).sum() for w in model.weights))
    losses = [round(float(v), 6) for v in history.history["loss"]]
    seconds = round(time.perf_counter() - started, 1)
    print(json.dumps({"worker": index, "losses": losses, "weight_sum": weights, "seconds": seconds}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--unpatched", action="store_true")
    parser.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_index is not None:
        worker(args.worker_index, [int(p) for p in args.ports.split(",")], not args.unpatched)
        return 0
    sockets = [socket.socket() for _ in range(args.workers)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = ",".join(str(s.getsockname()[1]) for s in sockets)
    for s in sockets:
        s.close()
    flags = ["--unpatched"] if args.unpatched else []
    command = [sys.executable, __file__, "--ports", ports, *flags]
    processes = [
        subprocess.Popen(
            [*command, "--worker-index", str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for i in range(args.workers)
    ]
    results = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=120)
            if process.returncode:
                print(f"a worker failed: {err.strip().splitlines()[-1]}")
            results += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    finally:
        for process in processes:
            process.kill()
    for result in results:
        print(result)
    agree = len(results) == args.workers and len({json.dumps(r["losses"]) for r in results}) == 1
    print("workers agree" if agree else "workers do not agree or did not finish")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
