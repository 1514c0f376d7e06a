"""Choosing a `tf.distribute` strategy and the precision policy from command-line names."""

import json
import os

import keras
import tensorflow as tf

STRATEGIES = ("auto", "one", "mirrored", "multiworker", "tpu")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


def make_strategy(name="auto"):
    """Returns the strategy called `name`.

    auto: MirroredStrategy over all GPUs when there are several, else TensorFlow's default strategy
    (one device, the GPU if any, with no distribution machinery in the way).
    mirrored: every local GPU, or every logical CPU device when there is no GPU.
    multiworker: MultiWorkerMirroredStrategy, configured by the TF_CONFIG environment variable.
    tpu: TPUStrategy on the TPU that TPUClusterResolver finds.
    """
    if name not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {STRATEGIES}, received {name!r}.")
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
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multiworker needs the TF_CONFIG environment variable (see README).")
        json.loads(os.environ["TF_CONFIG"])  # fail early, in one sentence, on malformed JSON
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def set_precision(name="auto"):
    """Sets Keras' global dtype policy and returns its name.

    auto: mixed_float16 on GPUs (loss scaling is added by the trainer), float32 on CPUs, where
    mixed precision measured slower.
    """
    if name not in PRECISIONS:
        raise ValueError(f"--mixed-precision must be one of {PRECISIONS}, received {name!r}.")
    if name == "auto":
        name = "mixed_float16" if tf.config.list_logical_devices("GPU") else "float32"
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


def worker_index():
    """This worker's index in TF_CONFIG (0 outside a multi-worker run)."""
    return int(json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {}).get("index", 0))
