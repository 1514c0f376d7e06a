"""sRGB <-> CIE Lab conversion and the paper's Lab normalization, in pure TensorFlow.

All functions take and return float tensors with any leading batch shape and a last axis of
channels. They use only element-wise ops and a 3x3 matrix product, so they run eagerly, inside
`tf.data.Dataset.map` and under `jit_compile`. The constants follow scikit-image's `rgb2lab`
(sRGB primaries, D65 white point, 2-degree observer), so results agree with it to ~1e-4.
"""

import numpy as np
import tensorflow as tf

# Linear sRGB -> CIE XYZ (D65).
_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_RGB_FROM_XYZ = tuple(map(tuple, np.linalg.inv(np.array(_XYZ_FROM_RGB)).tolist()))
_D65_WHITE = (0.95047, 1.0, 1.08883)
_EPSILON = 0.008856  # (6/29)**3, where the cube-root branch of f(t) begins
_KAPPA = 7.787  # slope of the linear branch of f(t)

# The paper's normalization into [-1, 1]: L / 50 - 1 and ab / 128.
L_SCALE = 50.0
L_SHIFT = 1.0
AB_SCALE = 128.0


def _matmul_channels(x, matrix):
    matrix = tf.constant(matrix, dtype=x.dtype)
    return tf.tensordot(x, tf.transpose(matrix), axes=1)


def rgb_to_lab(rgb):
    """Converts sRGB in [0, 1] to CIE Lab (L in [0, 100], a and b roughly in [-128, 127])."""
    rgb = tf.convert_to_tensor(rgb)
    if not rgb.dtype.is_floating:
        raise ValueError(f"rgb_to_lab expects a float tensor in [0, 1], received dtype={rgb.dtype}.")
    rgb = tf.clip_by_value(rgb, 0.0, 1.0)
    linear = tf.where(
        rgb > 0.04045,
        tf.pow((tf.maximum(rgb, 0.04045) + 0.055) / 1.055, 2.4),
        rgb / 12.92,
    )
    xyz = _matmul_channels(linear, _XYZ_FROM_RGB) / tf.constant(_D65_WHITE, dtype=rgb.dtype)
    f = tf.where(
        xyz > _EPSILON,
        tf.pow(tf.maximum(xyz, _EPSILON), 1.0 / 3.0),
        _KAPPA * xyz + 16.0 / 116.0,
    )
    fx, fy, fz = tf.unstack(f, axis=-1)
    lightness = 116.0 * fy - 16.0
    a = 500.0 * (fx - fy)
    b = 200.0 * (fy - fz)
    return tf.stack([lightness, a, b], axis=-1)


def lab_to_rgb(lab):
    """Converts CIE Lab back to sRGB, clipped to [0, 1] (out-of-gamut colours are clipped)."""
    lab = tf.convert_to_tensor(lab)
    if not lab.dtype.is_floating:
        raise ValueError(f"lab_to_rgb expects a float tensor, received dtype={lab.dtype}.")
    lightness, a, b = tf.unstack(lab, axis=-1)
    fy = (lightness + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = tf.maximum(fy - b / 200.0, 0.0)
    f = tf.stack([fx, fy, fz], axis=-1)
    threshold = 6.0 / 29.0
    xyz = tf.where(f > threshold, f * f * f, (f - 16.0 / 116.0) / _KAPPA)
    xyz = xyz * tf.constant(_D65_WHITE, dtype=lab.dtype)
    linear = _matmul_channels(xyz, _RGB_FROM_XYZ)
    rgb = tf.where(
        linear > 0.0031308,
        1.055 * tf.pow(tf.maximum(linear, 0.0031308), 1.0 / 2.4) - 0.055,
        12.92 * linear,
    )
    return tf.clip_by_value(rgb, 0.0, 1.0)


def normalize_lab(lab):
    """Splits Lab into the model's input L and target ab, both scaled into [-1, 1]."""
    lab = tf.convert_to_tensor(lab)
    lightness = lab[..., :1] / L_SCALE - L_SHIFT
    ab = lab[..., 1:] / AB_SCALE
    return lightness, ab


def denormalize_lab(lightness, ab):
    """Inverse of `normalize_lab`: joins normalized L (1 channel) and ab (2 channels) into Lab."""
    lightness = (tf.convert_to_tensor(lightness) + L_SHIFT) * L_SCALE
    ab = tf.convert_to_tensor(ab) * AB_SCALE
    return tf.concat([lightness, tf.cast(ab, lightness.dtype)], axis=-1)


# The two colour spaces of the package's colorizers: the paper's Lab (input normalized L in [-1, 1],
# target normalized ab) and the MobileNetV2 multitask model's YUV (input Y in [0, 1], target UV,
# `tf.image.rgb_to_yuv`).
COLOR_SPACES = ("lab", "yuv")
TARGET_KEYS = {"lab": "ab", "yuv": "uv"}  # the key of the colour target in a multitask batch


def check_color_space(color_space):
    """A one-sentence error for a colour space the package does not know."""
    if color_space not in COLOR_SPACES:
        raise ValueError(f"color_space must be one of {COLOR_SPACES}, received color_space={color_space!r}.")


def split_rgb(rgb, color_space="lab"):
    """sRGB [..., 3] in [0, 1] -> (grey input [..., 1], colour target [..., 2]) of `color_space`."""
    check_color_space(color_space)
    return normalize_lab(rgb_to_lab(rgb)) if color_space == "lab" else rgb_to_yuv_target(rgb)


def join_rgb(grey, colour, color_space="lab"):
    """Inverse of `split_rgb`: (grey input, colour channels) -> sRGB clipped to [0, 1]."""
    check_color_space(color_space)
    if color_space == "lab":
        return lab_to_rgb(denormalize_lab(grey, colour))
    return yuv_target_to_rgb(grey, colour)


def rgb_to_yuv_target(rgb):
    """sRGB [..., 3] in [0, 1] -> (Y [..., 1] in [0, 1], UV [..., 2]), by `tf.image.rgb_to_yuv`.

    U lies in [-0.436, 0.436] and V in [-0.615, 0.615]. Y is the MobileNetV2 model's input, UV its
    colour target.
    """
    rgb = tf.convert_to_tensor(rgb)
    if not rgb.dtype.is_floating:
        raise ValueError(f"rgb_to_yuv_target expects a float tensor in [0, 1], received dtype={rgb.dtype}.")
    yuv = tf.image.rgb_to_yuv(tf.clip_by_value(rgb, 0.0, 1.0))
    return yuv[..., :1], yuv[..., 1:]


def yuv_target_to_rgb(y, uv):
    """Inverse of `rgb_to_yuv_target` for display: (Y [..., 1], UV [..., 2]) -> sRGB clipped to [0, 1]."""
    y = tf.convert_to_tensor(y)
    uv = tf.cast(tf.convert_to_tensor(uv), y.dtype)
    return tf.clip_by_value(tf.image.yuv_to_rgb(tf.concat([y, uv], axis=-1)), 0.0, 1.0)
