"""Loading a trained generator and colorizing anyone's photos at their own resolution."""

import csv
import dataclasses
import hashlib
import json
import os

import keras
import numpy as np
import tensorflow as tf

from cgan_colorization import pretrained
from cgan_colorization.constants import CHECKPOINT_FILES, DEFAULT_CHECKPOINT
from cgan_colorization.engine.callbacks import KEPT_STEPS_RECORD
from cgan_colorization.engine.config import TrainConfig, check_config, load_config
from cgan_colorization.pretexts.pretext import Colorizer
from data.color import join_rgb, split_rgb

# What each file of a run folder is, and the record beside it that says which epoch it holds.
_FILE_CHECKPOINT = {**{name: kind for kind, name in CHECKPOINT_FILES.items()}, "generator.keras": "last"}
_RECORDS = {"last": "last.json", "best": "best.json"}


def resolve_weights(path, checkpoint=DEFAULT_CHECKPOINT):
    """A run folder or a weights file -> the generator weights file to load. In a run folder,
    `checkpoint` picks the last epoch's generator ("last") or the best-validation one ("best"); a
    missing one is a one-sentence FileNotFoundError, never a fall-back to the other."""
    if checkpoint not in CHECKPOINT_FILES:
        raise ValueError(f"--checkpoint must be one of {tuple(CHECKPOINT_FILES)}, received {checkpoint!r}.")
    if pretrained.is_pretrained(path):  # a colorizer shipped with the package: its one generator
        return os.path.join(pretrained.folder(path), CHECKPOINT_FILES["last"])
    if os.path.isdir(path):
        name = CHECKPOINT_FILES[checkpoint]
        candidate = os.path.join(path, name)
        if os.path.isfile(candidate):
            return candidate
        if checkpoint == "best":
            raise FileNotFoundError(f"{path} holds no {name} (the generator of its best validation epoch): pass "
                                    "--checkpoint last, or a run folder that validated at least once.")
        raise FileNotFoundError(f"{path} holds no {name}: has a run finished an epoch there?")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist: give a colorizer run folder or a generator weights file.")
    return path


def _epochs_logged(run_dir):
    """Epochs in a run's log.csv (for run folders written before last.json existed), or None."""
    path = os.path.join(run_dir, "log.csv")
    if not os.path.isfile(path):
        return None
    with open(path, newline="") as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f) if row.get("epoch", "").isdigit()]
    return max(epochs) + 1 if epochs else None


def checkpoint_info(path):
    """What a generator weights file is, for the records of every experiment that loads it: its
    path, which checkpoint of its run folder it is ("last", "best", or "file" for any other file),
    the epoch it was saved after (and the monitored value, for "best"), and its SHA-256."""
    run_dir, name = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
    kind = _FILE_CHECKPOINT.get(name, "file")
    info = {"file": path, "checkpoint": kind, "epoch": None}
    record = os.path.join(run_dir, _RECORDS.get(kind, ""))
    kept = _kept_step(run_dir, name)
    if kept:  # a generator kept at an optimizer step (--keep-steps): "step3000"
        info.update(checkpoint=f"step{kept[0]}", epoch=kept[1]["epoch"], optimizer_step=kept[1]["optimizer_step"])
    elif kind in _RECORDS and os.path.isfile(record):
        with open(record) as f:
            info.update(json.load(f))
    elif kind == "last":
        info["epoch"] = _epochs_logged(run_dir)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    info["sha256"] = digest.hexdigest()
    return info


def _kept_step(run_dir, name):
    """(step, record) of a generator file kept by --keep-steps, else None."""
    path = os.path.join(run_dir, KEPT_STEPS_RECORD)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        kept = json.load(f)
    return next(((int(step), record) for step, record in kept.items() if record.get("file") == name), None)


def describe_checkpoint(info):
    """One phrase for reports and logs, e.g. "last (epoch 30)" or "best val_g_l1 (epoch 1)"."""
    if not info:
        return "n/a"
    monitor = next((k for k in info if k.startswith("val_")), None)
    kind = f"best {monitor}" if info["checkpoint"] == "best" and monitor else info["checkpoint"]
    return f"{kind} (epoch {info['epoch']})" if info.get("epoch") is not None else kind


def _run_config(path, image_size, base_filters):
    run_dir = os.path.dirname(os.path.abspath(path))
    if os.path.isfile(os.path.join(run_dir, "config.json")):
        config = load_config(run_dir)
        return run_dir, dataclasses.replace(config, image_size=image_size or config.image_size,
                                            base_filters=base_filters or config.base_filters)
    if image_size is None or base_filters is None:
        raise ValueError(f"{path} has no config.json beside it: give --image-size and --base-filters.")
    return run_dir, TrainConfig(image_size=image_size, base_filters=base_filters)


def load_colorizer(path, image_size=None, base_filters=None, inference_dropout=False,
                   checkpoint=DEFAULT_CHECKPOINT):
    """Loads `path` (a run folder, `generator*.weights.h5` or `generator.keras`) as a `Colorizer`,
    built and loaded by the run's pretext (its objective and backbone in `config.json`). In a run
    folder, `checkpoint` ("last" or "best") picks the generator; the loaded one's `checkpoint_info`
    is the Colorizer's `checkpoint`."""
    path = resolve_weights(path, checkpoint)
    colorizer = _load(path, image_size, base_filters, inference_dropout)
    colorizer.checkpoint = checkpoint_info(path)
    return colorizer


def _load(path, image_size, base_filters, inference_dropout):
    if path.endswith(".keras"):
        generator = keras.saving.load_model(path, compile=False)
        run_dir = os.path.dirname(os.path.abspath(path))
        config = load_config(run_dir) if os.path.isfile(os.path.join(run_dir, "config.json")) else None
        entry = check_config(config) if config else None
        # Only the U-Net pretexts that predict ab directly (GAN, L1) write a generator.keras.
        return Colorizer(generator, lambda g: generator(g, training=False), config, int(generator.input_shape[1]),
                         pretext=entry, bottleneck=entry.bottleneck if entry else "bottleneck_relu",
                         generator=generator)
    if not path.endswith(".weights.h5"):
        raise ValueError(f"expected a run folder, a .weights.h5 or a .keras file, received {path!r}.")
    run_dir, config = _run_config(path, image_size, base_filters)
    entry = check_config(config)
    return entry.implementation().load(entry, config, run_dir, path, inference_dropout)


def colorize_rgb(colorizer, rgb):
    """Colorizes one sRGB image [H, W, 3] in [0, 1] of any size and returns sRGB [H, W, 3].

    The colour channels (ab, or UV for the MobileNetV2 model) are predicted at the model's size and
    upsampled; the lightness (L, or Y) stays the photo's own, at full resolution, so no detail is lost.
    """
    return colorize_tensor(colorizer.predict_ab, rgb, colorizer.image_size, colorizer.color_space).numpy()


def colorize_tensor(predict_ab, rgb, image_size, color_space="lab"):
    """`colorize_rgb` in TensorFlow ops alone (a tensor in, a tensor out), so that the exported
    SavedModel's `colorize` signature does the same maths (`export`)."""
    rgb = tf.convert_to_tensor(rgb, tf.float32)
    full_gray, _ = split_rgb(rgb, color_space)
    small = tf.image.resize(rgb, [image_size, image_size], antialias=True)
    small_gray, _ = split_rgb(tf.clip_by_value(small, 0.0, 1.0), color_space)
    colour = predict_ab(small_gray[None])[0]
    colour = tf.image.resize(colour, tf.shape(rgb)[:2], method="bilinear")
    return join_rgb(full_gray, colour, color_space)


def save_rgb(rgb, path):
    """Writes an sRGB float image as PNG or JPEG (by extension)."""
    data = tf.image.convert_image_dtype(np.clip(rgb, 0.0, 1.0), tf.uint8, saturate=True)
    encoded = tf.io.encode_jpeg(data, quality=95) if path.lower().endswith((".jpg", ".jpeg")) \
        else tf.io.encode_png(data)
    tf.io.write_file(path, encoded)
