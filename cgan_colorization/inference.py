"""Loading a trained generator and colorizing anyone's photos at their own resolution."""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

from cgan_colorization.config import TrainConfig, check_config, load_config
from cgan_colorization.pretext import Colorizer
from data.color import join_rgb, split_rgb

WEIGHT_NAMES = ("generator_best.weights.h5", "generator.weights.h5")


def resolve_weights(path):
    """A run folder or a weights file -> the generator weights file to load."""
    if os.path.isdir(path):
        for name in WEIGHT_NAMES:
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                return candidate
        raise FileNotFoundError(f"{path} holds no {' or '.join(WEIGHT_NAMES)}: has a run finished an epoch there?")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file {path} does not exist.")
    return path


def _run_config(path, image_size, base_filters):
    run_dir = os.path.dirname(os.path.abspath(path))
    if os.path.isfile(os.path.join(run_dir, "config.json")):
        config = load_config(run_dir)
        return run_dir, dataclasses.replace(config, image_size=image_size or config.image_size,
                                            base_filters=base_filters or config.base_filters)
    if image_size is None or base_filters is None:
        raise ValueError(f"{path} has no config.json beside it: give --image-size and --base-filters.")
    return run_dir, TrainConfig(image_size=image_size, base_filters=base_filters)


def load_colorizer(path, image_size=None, base_filters=None, inference_dropout=False):
    """Loads `path` (a run folder, `generator*.weights.h5` or `generator.keras`) as a `Colorizer`,
    built and loaded by the run's pretext (its objective and backbone in `config.json`)."""
    path = resolve_weights(path)
    if path.endswith(".keras"):
        generator = keras.saving.load_model(path, compile=False)
        run_dir = os.path.dirname(os.path.abspath(path))
        config = load_config(run_dir) if os.path.isfile(os.path.join(run_dir, "config.json")) else None
        entry = check_config(config) if config else None
        # Only the U-Net pretexts that predict ab directly (GAN, L1) write a generator.keras.
        return Colorizer(generator, lambda g: generator(g, training=False), config, int(generator.input_shape[1]),
                         pretext=entry, bottleneck=entry.bottleneck if entry else "bottleneck_relu")
    if not path.endswith(".weights.h5"):
        raise ValueError(f"expected a run folder, a .weights.h5 or a .keras file, received {path!r}.")
    run_dir, config = _run_config(path, image_size, base_filters)
    entry = check_config(config)
    return entry.implementation().load(entry, config, run_dir, path, inference_dropout)


def load_generator(path, image_size=None, base_filters=None, inference_dropout=False):
    """The network of a trained colorizer, ready for `transfer_weights` (see `load_colorizer`)."""
    return load_colorizer(path, image_size, base_filters, inference_dropout).network


def colorize_rgb(colorizer, rgb):
    """Colorizes one sRGB image [H, W, 3] in [0, 1] of any size and returns sRGB [H, W, 3].

    The colour channels (ab, or UV for the MobileNetV2 model) are predicted at the model's size and
    upsampled; the lightness (L, or Y) stays the photo's own, at full resolution, so no detail is lost.
    """
    size, space = colorizer.image_size, colorizer.color_space
    rgb = tf.convert_to_tensor(rgb, tf.float32)
    full_gray, _ = split_rgb(rgb, space)
    small = tf.image.resize(rgb, [size, size], antialias=True)
    small_gray, _ = split_rgb(tf.clip_by_value(small, 0.0, 1.0), space)
    colour = colorizer.predict_ab(small_gray[None])[0]
    colour = tf.image.resize(colour, tf.shape(rgb)[:2], method="bilinear")
    return join_rgb(full_gray, colour, space).numpy()


def save_rgb(rgb, path):
    """Writes an sRGB float image as PNG or JPEG (by extension)."""
    data = tf.image.convert_image_dtype(np.clip(rgb, 0.0, 1.0), tf.uint8, saturate=True)
    encoded = tf.io.encode_jpeg(data, quality=95) if path.lower().endswith((".jpg", ".jpeg")) \
        else tf.io.encode_png(data)
    tf.io.write_file(path, encoded)
