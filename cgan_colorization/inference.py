"""Loading a trained generator and colorizing anyone's photos at their own resolution."""

import os

import keras
import numpy as np
import tensorflow as tf

from cgan_colorization.color import lab_to_rgb, normalize_lab, rgb_to_lab, denormalize_lab
from cgan_colorization.config import load_config
from cgan_colorization.models import build_generator

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


def load_generator(path, image_size=None, base_filters=None, inference_dropout=False):
    """Builds the generator described by the run's `config.json` (or the given sizes) and loads
    `path` (a run folder, `*.weights.h5` or `generator.keras`) into it."""
    path = resolve_weights(path)
    if path.endswith(".keras"):
        return keras.saving.load_model(path, compile=False)
    if not path.endswith(".weights.h5"):
        raise ValueError(f"expected a run folder, a .weights.h5 or a .keras file, received {path!r}.")
    run_dir = os.path.dirname(os.path.abspath(path))
    if image_size is None or base_filters is None:
        if not os.path.isfile(os.path.join(run_dir, "config.json")):
            raise ValueError(f"{path} has no config.json beside it: give --image-size and --base-filters.")
        config = load_config(run_dir)
        image_size = image_size or config.image_size
        base_filters = base_filters or config.base_filters
    generator = build_generator(image_size, base_filters, inference_dropout=inference_dropout)
    try:
        generator.load_weights(path)
    except (ValueError, KeyError) as error:
        raise ValueError(
            f"{path} does not fit a generator of image_size={image_size}, base_filters={base_filters}: "
            f"is it a colorizer's generator weights file? ({str(error).splitlines()[0][:200]})"
        ) from None
    return generator


def colorize_rgb(generator, rgb):
    """Colorizes one sRGB image [H, W, 3] in [0, 1] of any size and returns sRGB [H, W, 3].

    The ab channels are predicted at the model's size and upsampled; the lightness stays the
    photo's own, at full resolution, so no detail is lost.
    """
    size = int(generator.input_shape[1])
    rgb = tf.convert_to_tensor(rgb, tf.float32)
    full_gray, _ = normalize_lab(rgb_to_lab(rgb))
    small = tf.image.resize(rgb, [size, size], antialias=True)
    small_gray, _ = normalize_lab(rgb_to_lab(tf.clip_by_value(small, 0.0, 1.0)))
    ab = generator(small_gray[None], training=False)[0]
    ab = tf.image.resize(ab, tf.shape(rgb)[:2], method="bilinear")
    return lab_to_rgb(denormalize_lab(full_gray, ab)).numpy()


def save_rgb(rgb, path):
    """Writes an sRGB float image as PNG or JPEG (by extension)."""
    data = tf.image.convert_image_dtype(np.clip(rgb, 0.0, 1.0), tf.uint8, saturate=True)
    encoded = tf.io.encode_jpeg(data, quality=95) if path.lower().endswith((".jpg", ".jpeg")) \
        else tf.io.encode_png(data)
    tf.io.write_file(path, encoded)
