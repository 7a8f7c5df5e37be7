"""Training on several workers with `tf.distribute.MultiWorkerMirroredStrategy`.

A `TF_CONFIG` in the environment that names more than one worker is honoured as
TensorFlow users expect: one process per worker, the same command in each; worker 0
is the chief, the only one that writes. Keras 3.15's `model.fit` needs two changes to
run under this strategy (keras-team/keras#20585; `experiments/multiworker_spike.py`),
which `CNNTextModel` (`backbone.py`) applies only under it: it builds from one replica's
share of the first batch (`local_batch`) and reports step logs as vectors (`vector_logs`).

Starting the cluster is bounded (`cluster_timeout`) and interruptible. TensorFlow's
strategy constructor blocks in C++ with the GIL held until every task has registered, so
no Python code (signal handlers included) runs while it waits. Each worker therefore
first waits in Python (`_rendezvous`): a worker that is not the leader (the chief, or
worker 0) listens on its own address and waits for the leader's; the leader waits until
every other worker listens. Only then is the strategy made, with TensorFlow's own
registration barrier bounded by the same timeout as a backstop. TensorFlow's coordination
agent also replaces the SIGTERM handler with its preemption notifier, which swallows the
signal; Python's handler is put back once the strategy is made.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import threading
import time

import tensorflow as tf

from mlgen.errors import InputError

# How long a worker waits for the others to answer before it stops with an error naming the
# first that did not, in seconds; the environment variable MLGEN_CLUSTER_TIMEOUT overrides it.
CLUSTER_TIMEOUT = 300.0
TIMEOUT_VARIABLE = "MLGEN_CLUSTER_TIMEOUT"
# Seconds between two looks at the other workers' addresses while waiting.
PROBE_SECONDS = 0.2
EXAMPLE = '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}'
JOBS = ("chief", "worker")  # what mlgen trains with; a `chief` job, when given, has one task


def cluster_timeout() -> float:
    """`CLUSTER_TIMEOUT`, or `MLGEN_CLUSTER_TIMEOUT` seconds when set."""
    text = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not text:
        return CLUSTER_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise InputError(f"{TIMEOUT_VARIABLE}={text!r}: expected a number of seconds above 0")
    return value


def cluster() -> dict:
    """`TF_CONFIG` as a dict (`{}` when unset, blank or `{}`), checked: see `check_cluster`."""
    text = os.environ.get("TF_CONFIG") or ""
    if not text.strip():
        return {}
    try:
        config = json.loads(text)
    except ValueError as err:
        where = f"{err.msg} at character {err.pos + 1}" if isinstance(err, json.JSONDecodeError) else str(err)
        raise InputError(f"TF_CONFIG is not JSON ({where}); it should look like {EXAMPLE}") from None
    check_cluster(config)
    return config


def check_cluster(config) -> None:
    """Refuses a `TF_CONFIG` that is not `{"cluster": {"worker": ["host:port", ...]}, "task": {...}}`."""

    def refuse(problem: str):
        raise InputError(f"TF_CONFIG: {problem}; it should look like {EXAMPLE}")

    if not isinstance(config, dict):
        refuse(f"expected a JSON object, got {_json_kind(config)}")
    if not config:
        return
    spec, task = config.get("cluster"), config.get("task")
    if not isinstance(spec, dict) or not spec:
        refuse('"cluster" is missing' if spec is None else f'"cluster" must be an object of jobs, got {spec!r:.60}')
    for job in spec:
        if job not in JOBS:
            refuse(f'job "{job}" is not supported (mlgen trains with "worker" tasks and an optional "chief")')
    seen = {}
    for job, addresses in spec.items():
        if not isinstance(addresses, list) or not addresses:
            refuse(f'"cluster"."{job}" must be a non-empty list of "host:port" strings, got {addresses!r:.60}')
        if job == "chief" and len(addresses) != 1:
            refuse(f'"cluster"."chief" must name one task, got {len(addresses)}')
        for i, address in enumerate(addresses):
            if not isinstance(address, str) or not _split_address(address):
                refuse(f'"cluster"."{job}"[{i}] must be a "host:port" string, got {address!r:.60}')
            if address in seen:
                refuse(f"{address} is named twice ({seen[address]} and {job} {i})")
            seen[address] = f"{job} {i}"
    if not isinstance(task, dict):
        refuse('"task" is missing' if task is None else f'"task" must be an object, got {task!r:.60}')
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in spec:
        refuse(f'"task"."type" must be one of the cluster\'s jobs ({", ".join(spec)}), got {kind!r:.40}')
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(spec[kind]):
        refuse(f'"task"."index" must be an integer from 0 to {len(spec[kind]) - 1} for job "{kind}", got {index!r:.40}')


def _json_kind(value) -> str:
    kinds = {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _split_address(address: str) -> tuple[str, int] | None:
    """("host", port) of "host:port" ("[::1]:port" for IPv6), or None when it is not one."""
    match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^:\s\[\]]+):(\d{1,5})", address)
    if not match or not 0 < int(match.group(2)) < 65536:
        return None
    return match.group(1).strip("[]"), int(match.group(2))


def tasks() -> list[tuple[str, str]]:
    """Every task of the cluster as (name for messages, "host:port"), the leader first:
    the chief (when there is one), then the workers by index."""
    spec = cluster().get("cluster", {})
    named = [("the chief", address) for address in spec.get("chief", [])]
    for index, address in enumerate(spec.get("worker", [])):
        named.append((f"worker {index}" + (" (the chief)" if index == 0 and not named else ""), address))
    return named


def task_position() -> int:
    """This process's place in `tasks()`."""
    config = cluster()
    task = config.get("task", {})
    if task.get("type") == "chief":
        return 0
    return len(config.get("cluster", {}).get("chief", [])) + task.get("index", 0)


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
    The first call waits for the cluster (`start_cluster`).
    """
    global _STRATEGY
    if _STRATEGY is None and num_workers() > 1:
        _STRATEGY = start_cluster()
    return _STRATEGY


def start_cluster():
    """Waits, at most `cluster_timeout()` seconds, for the other workers, then makes the strategy.

    Raises `InputError` naming the first worker that did not answer. Signals are handled
    while it waits (SIGTERM and SIGINT end it as they end any command).
    """
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.eager import context

    timeout = cluster_timeout()
    deadline = time.monotonic() + timeout
    named, me = tasks(), task_position()
    _rendezvous(named, me, deadline, timeout)
    # TensorFlow's own wait for every task to register, bounded: the backstop for a worker that
    # answered the rendezvous and then went away. (Unset, the leader waits for ever.)
    spec = cluster()["cluster"]
    ctx = context.context()
    ctx.configure_coordination_service(
        service_type="standalone",
        service_leader=f"/job:{'chief' if 'chief' in spec else 'worker'}/replica:0/task:0",
        cluster_register_timeout_in_ms=int(max(deadline - time.monotonic(), 30.0) * 1000),
        coordinated_jobs=[
            coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(spec[job])) for job in JOBS if job in spec
        ],
    )
    ctx.coordination_service.cluster_register_with_barrier = True
    handler = signal.getsignal(signal.SIGTERM)
    try:
        made = tf.distribute.MultiWorkerMirroredStrategy()
    except (tf.errors.OpError, RuntimeError, ValueError) as err:
        missing = [name_address for i, name_address in enumerate(named) if i != me and not _answers(name_address[1])]
        timed_out = re.findall(r"/job:(\w+)/replica:0/task:(\d+)", str(err).split("timed out task names:")[-1])
        if missing:
            name, address = missing[0]
            raise InputError(f"{name} ({address}) stopped answering while the cluster started") from None
        first = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
        hint = f" (waiting for {', '.join(f'{job} {index}' for job, index in timed_out)})" if timed_out else ""
        raise InputError(f"the cluster did not start within {timeout:g} s{hint}: {first}") from None
    finally:
        _restore_sigterm(handler)
    return made


def _restore_sigterm(handler) -> None:
    """Puts Python's SIGTERM handler back (TensorFlow's preemption notifier swallows SIGTERM)."""
    if handler is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def _rendezvous(named: list[tuple[str, str]], me: int, deadline: float, timeout: float) -> None:
    """Returns once the workers this one waits for answer at their addresses (see the module's doc)."""
    listener = None
    if me != 0:  # tell the leader that this worker is here
        listener = _listen(*named[me])
    waiting = [named[0]] if me != 0 else named[1:]
    try:
        while waiting:
            waiting = [(name, address) for name, address in waiting if not _answers(address)]
            if not waiting:
                break
            if time.monotonic() >= deadline:
                name, address = waiting[0]
                raise InputError(
                    f"{name} ({address}) did not answer within {timeout:g} s: start the same command there "
                    f"with its TF_CONFIG (or set {TIMEOUT_VARIABLE} to wait longer)"
                )
            time.sleep(PROBE_SECONDS)
    finally:
        if listener is not None:
            listener.close()


def _listen(name: str, address: str) -> socket.socket:
    """A socket listening on `address`'s port, on every interface, as TensorFlow's server will."""
    port = _split_address(address)[1]
    try:
        if socket.has_dualstack_ipv6():
            return socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
        return socket.create_server(("", port))
    except OSError as err:
        raise InputError(f"{name} cannot listen on {address}: {err.strerror or err}") from None


def _answers(address: str) -> bool:
    """Whether something accepts connections at "host:port" (a name that does not resolve yet: no)."""
    host, port = _split_address(address)
    with contextlib.suppress(OSError):
        with socket.create_connection((host, port), timeout=1.0):
            return True
    return False


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
