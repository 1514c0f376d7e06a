"""Loading a trained generator and colorizing anyone's photos at their own resolution."""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

from cgan_colorization.color import join_rgb, split_rgb
from cgan_colorization.config import TrainConfig, color_space, load_config
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


class Colorizer:
    """A trained colorizer as loaded from disk: `network` (the net whose weights transfer
    downstream), `predict_ab(L)` (normalized L -> normalized ab; for the MobileNetV2 model, whose
    `color_space` is "yuv", Y -> UV) and the run's `config`."""

    def __init__(self, network, predict_ab, config, image_size, color_space="lab"):
        self.network, self.predict_ab, self.config, self.image_size = network, predict_ab, config, image_size
        self.color_space = color_space


def _run_config(path, image_size, base_filters):
    run_dir = os.path.dirname(os.path.abspath(path))
    if os.path.isfile(os.path.join(run_dir, "config.json")):
        config = load_config(run_dir)
        return run_dir, dataclasses.replace(config, image_size=image_size or config.image_size,
                                            base_filters=base_filters or config.base_filters)
    if image_size is None or base_filters is None:
        raise ValueError(f"{path} has no config.json beside it: give --image-size and --base-filters.")
    return run_dir, TrainConfig(image_size=image_size, base_filters=base_filters)


def _load_into(network, path, config):
    try:
        network.load_weights(path)
    except (ValueError, KeyError) as error:
        raise ValueError(
            f"{path} does not fit a {config.objective} colorizer of image_size={config.image_size}, "
            f"base_filters={config.base_filters}: is it a colorizer's generator weights file? "
            f"({str(error).splitlines()[0][:200]})"
        ) from None
    return network


def load_colorizer(path, image_size=None, base_filters=None, inference_dropout=False):
    """Loads `path` (a run folder, `generator*.weights.h5` or `generator.keras`) as a `Colorizer`,
    building the network that the run's objective (from its `config.json`) trained."""
    path = resolve_weights(path)
    if path.endswith(".keras"):
        generator = keras.saving.load_model(path, compile=False)
        return Colorizer(generator, lambda g: generator(g, training=False), None, int(generator.input_shape[1]))
    if not path.endswith(".weights.h5"):
        raise ValueError(f"expected a run folder, a .weights.h5 or a .keras file, received {path!r}.")
    run_dir, config = _run_config(path, image_size, base_filters)
    size, width = config.image_size, config.base_filters
    if config.objective == "multitask" and config.backbone == "mobilenetv2":
        from cgan_colorization.multitask import build_mobilenet_unet

        network = build_mobilenet_unet(size, num_outputs=2)  # trunk + colour head, as saved
        generator = _load_into(keras.Model(network.input, network.output["uv"], name="generator"), path, config)
        return Colorizer(generator, lambda y: generator(y, training=False), config, size, color_space(config.backbone))
    if config.objective in ("gan", "l1", "multitask"):  # multitask saves its trunk + colour head as G
        generator = _load_into(build_generator(size, width, inference_dropout=inference_dropout), path, config)
        return Colorizer(generator, lambda g: generator(g, training=False), config, size)
    if config.objective == "classification":
        from cgan_colorization import zhang
        from cgan_colorization.objectives import ZHANG_STATS_FILE

        bins = zhang.load_zhang_stats(os.path.join(run_dir, ZHANG_STATS_FILE)).bins
        network = _load_into(zhang.build_classification_generator(size, width, len(bins)), path, config)
        bins_t = tf.constant(bins, tf.float32)
        return Colorizer(network, lambda g: zhang.annealed_mean(network(g, training=False), bins_t,
                                                                 config.temperature), config, size)
    raise ValueError(f"{path}: unknown objective {config.objective!r} in its config.json.")


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
