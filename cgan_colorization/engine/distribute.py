"""Choosing a `tf.distribute` strategy and the precision policy from command-line names, and what a
multi-worker run needs besides: who writes, and how a lost worker is reported."""

import contextlib
import hashlib
import json
import os
import shutil

import keras
import tensorflow as tf

from cgan_colorization.constants import PRECISIONS, STRATEGIES  # noqa: F401 - re-exported for callers
# Seconds a multi-worker collective waits for the other workers before giving up (0: forever).
DEFAULT_COLLECTIVE_TIMEOUT = 0  # 0: no per-collective timer; a dead worker is found by the coordination service's heartbeats


def make_strategy(name="auto", collective_timeout=DEFAULT_COLLECTIVE_TIMEOUT):
    """Returns the strategy called `name`.

    auto: MirroredStrategy over all GPUs when there are several, else TensorFlow's default strategy
    (one device, the GPU if any, with no distribution machinery in the way).
    mirrored: every local GPU, or every logical CPU device when there is no GPU.
    multiworker: MultiWorkerMirroredStrategy, configured by the TF_CONFIG environment variable (see
    `multiworker_strategy`; `collective_timeout` bounds how long a worker waits for the others).
    tpu: TPUStrategy on the TPU that TPUClusterResolver finds.
    """
    if name not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {STRATEGIES}, received {name!r}.")
    if name == "multiworker":  # first: collectives must be configured before anything starts TensorFlow
        return multiworker_strategy(collective_timeout)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        if len(gpus) <= 1:
            return tf.distribute.get_strategy()
        name = "mirrored"
    if name == "one":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def multiworker_strategy(collective_timeout=DEFAULT_COLLECTIVE_TIMEOUT):
    """MultiWorkerMirroredStrategy from TF_CONFIG, whose collectives give up after `collective_timeout`
    seconds (0: never) instead of waiting forever for a worker that died.

    Every all-reduce then raises `tf.errors.DeadlineExceededError` when a peer has not joined in that
    time, so the timeout must exceed the longest stretch one worker can spend outside collectives
    while the others wait (its start-up, a step, an epoch-end save). A worker whose process dies is
    noticed sooner by TensorFlow's coordination service, when its heartbeats stop (about 10 s), and
    the collectives then fail with `tf.errors.UnavailableError`.
    """
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise ValueError("--strategy multiworker needs the TF_CONFIG environment variable (see README).")
    try:
        json.loads(text)["cluster"]["worker"]
    except (ValueError, KeyError, TypeError):
        raise ValueError("TF_CONFIG must be JSON like {\"cluster\": {\"worker\": [\"hostA:port\", ...]}, "
                         f"\"task\": {{\"type\": \"worker\", \"index\": 0}}}}, received {text!r}.") from None
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=collective_timeout or None)
    return _MultiWorkerStrategy(communication_options=options)


class _MultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """MultiWorkerMirroredStrategy with the `reduce` that Keras 3's `fit` expects of it
    (keras-team/keras#20585): `fit` reduces its first (input, target) batch with one call, which
    MultiWorkerMirroredStrategy only does for a single tensor, and it averages every scalar loss
    over replicas with `axis=0`, which a scalar does not have. Here a nest is reduced leaf by leaf,
    and a scalar across replicas only."""

    def reduce(self, reduce_op, value, axis):
        reduce_one = super().reduce

        def leaf(v):
            first = v.values[0] if isinstance(v, tf.distribute.DistributedValues) else v
            scalar = getattr(first, "shape", None) is not None and first.shape.rank == 0
            return reduce_one(reduce_op, v, None if scalar else axis)

        return tf.nest.map_structure(leaf, value)


def peer_failure(error, after_restart=""):
    """The one sentence that replaces TensorFlow's error when a multi-worker run loses a worker
    (`after_restart` says what a restart does), or None when `error` is not such a failure."""
    if not isinstance(error, (tf.errors.DeadlineExceededError, tf.errors.UnavailableError,
                              tf.errors.CancelledError, tf.errors.AbortedError)):
        return None
    if not in_cluster():
        return None
    return (f"worker {worker_index()} lost contact with the other worker(s) of the multi-worker run "
            f"({type(error).__name__}): restart every worker with the same command{after_restart}.")


BFLOAT16_MIN_CAPABILITY = (8, 0)  # Ampere and later: bfloat16 at the float16 tensor-core rate


def choose_precision(name, capabilities, replicas=1):
    """The dtype policy that `--mixed-precision name` means on GPUs of these compute capabilities
    ([] on a CPU) with `replicas` replicas in sync.

    auto: float32 on CPUs (mixed precision measured slower there); mixed_bfloat16 when every GPU has
    compute capability >= 8.0 (no loss scaling, same tensor-core rate); mixed_float16 on older GPUs,
    refused with several replicas: Keras' loss scaling judges each replica's gradients before the
    all-reduce, so one replica may skip a step that another applies. An explicit mixed_float16 is
    taken as asked.
    """
    if name not in PRECISIONS:
        raise ValueError(f"--mixed-precision must be one of {PRECISIONS}, received {name!r}.")
    if name != "auto":
        return name
    if not capabilities:
        return "float32"
    if min(tuple(c) for c in capabilities) >= BFLOAT16_MIN_CAPABILITY:
        return "mixed_bfloat16"
    if replicas > 1:
        oldest = ".".join(map(str, min(tuple(c) for c in capabilities)))
        raise ValueError(f"--mixed-precision auto would pick mixed_float16 on these GPUs (compute capability {oldest}, "
                         f"no bfloat16), whose loss scaling can skip a step on one of the {replicas} replicas and not "
                         "on another: pass --mixed-precision mixed_float16 to use it anyway, or float32.")
    return "mixed_float16"


def gpu_capabilities():
    """The compute capability (major, minor) of every visible GPU; [] on a CPU."""
    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        found.append(tuple(capability) if capability else (0, 0))
    return found


def set_precision(name="auto", replicas=1):
    """Sets Keras' global dtype policy (`choose_precision` on this machine's GPUs) and returns its name."""
    name = choose_precision(name, gpu_capabilities(), replicas)
    keras.mixed_precision.set_global_policy(name)
    return name


def is_chief():
    """True on the worker that writes checkpoints, logs and figures (the only one outside multi-worker)."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = config.get("task", {})
    if not task:
        return True
    return task.get("type") == "chief" or (task.get("type") == "worker" and task.get("index") == 0
                                           and "chief" not in config.get("cluster", {}))


def in_cluster():
    """True in a process that TF_CONFIG makes one task of a multi-worker cluster."""
    return bool(json.loads(os.environ.get("TF_CONFIG") or "{}").get("task"))


def worker_index():
    """This worker's index in TF_CONFIG (0 outside a multi-worker run)."""
    return int(json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {}).get("index", 0))


@contextlib.contextmanager
def worker_folder(out):
    """The folder this process writes a run's files into, as a context manager: `out` on the chief (any
    process outside a multi-worker run is one); on every other worker the scratch folder `out/.worker-N`
    (N its index), removed when the block ends, however it ends.

    Every worker of a multi-worker run runs the same program, and its saves read synchronized variables
    together with the chief's, so none can skip them: the others write theirs apart, and only the
    chief's files stay.
    """
    if is_chief():
        yield out
        return
    scratch = os.path.join(out, f".worker-{worker_index()}")
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def weights_digest(model):
    """SHA-256 of every weight of `model` (both nets of a GAN), in order: the workers of a multi-worker
    run apply the same all-reduced updates, so theirs match bit for bit."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(weight.path.encode())
        digest.update(keras.ops.convert_to_numpy(weight.value).tobytes())
    return digest.hexdigest()
