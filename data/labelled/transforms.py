"""Image and image/mask transforms, pure TensorFlow, usable eagerly and inside `tf.data.map`.

Pair transforms (`fit_to_size`, which brings one photo to S x S, is in `data.decode`).
* The `*_pair` functions move an image and its class-index mask together. Masks are only ever
  resized with nearest neighbour, so no new class value can appear; padding fills the image
  with mid-grey `PAD_VALUE` and the mask with `VOID`, so padding never counts in the loss.
"""

import tensorflow as tf

from data.labelled.masks import VOID

PAD_VALUE = 0.5  # image padding (mid-grey); masks are padded with VOID


def _pad_offsets(extent, size):
    """(before, after) padding of one axis up to `size` (0 when already large enough)."""
    missing = tf.maximum(size - extent, 0)
    return tf.stack([missing // 2, missing - missing // 2])


def pad_pair(rgb, mask, size, fill=PAD_VALUE):
    """Pads image [H,W,3] and mask [H,W] on both sides to >= `size`: image `fill`, mask VOID."""
    hw = tf.shape(mask)
    rows, cols = _pad_offsets(hw[0], size), _pad_offsets(hw[1], size)
    rgb = tf.pad(rgb, tf.stack([rows, cols, [0, 0]]), constant_values=fill)
    mask = tf.pad(mask, tf.stack([rows, cols]), constant_values=VOID)
    return rgb, mask


def crop_pair(rgb, mask, size, seed=None):
    """Joint `size x size` crop of image and mask, padding first when smaller (see `pad_pair`).

    `seed` (a stateless seed pair) gives a random crop; None the centre crop.
    """
    rgb, mask = pad_pair(rgb, mask, size)
    hw = tf.shape(mask)
    if seed is None:
        top, left = (hw[0] - size) // 2, (hw[1] - size) // 2
    else:
        offsets = tf.random.stateless_uniform([2], seed=seed, minval=0, maxval=tf.int32.max,
                                              dtype=tf.int32)
        top = offsets[0] % (hw[0] - size + 1)
        left = offsets[1] % (hw[1] - size + 1)
    rgb = rgb[top:top + size, left:left + size]
    mask = mask[top:top + size, left:left + size]
    return tf.ensure_shape(rgb, [size, size, 3]), tf.ensure_shape(mask, [size, size])


def resize_mask(mask, size):
    """Nearest-neighbour resize of a class-index mask [H, W] to `size` ([h, w] or an int)."""
    size = [size, size] if isinstance(size, int) else size
    return tf.image.resize(mask[..., None], size, method="nearest")[..., 0]


def rescale_pair(rgb, mask, shorter):
    """Scales image (bilinear, antialiased) and mask (nearest) together so that the shorter side is
    `shorter` pixels, keeping the aspect ratio: crops then cover the scene, not a patch of it."""
    hw = tf.cast(tf.shape(mask), tf.float32)
    new_hw = tf.cast(tf.math.round(hw * (float(shorter) / tf.reduce_min(hw))), tf.int32)
    rgb = tf.clip_by_value(tf.image.resize(rgb, new_hw, antialias=True), 0.0, 1.0)
    return rgb, resize_mask(mask, new_hw)


def resize_pair(rgb, mask, size):
    """Squashes the whole image (bilinear, antialiased) and mask (nearest) to `size x size`."""
    rgb = tf.clip_by_value(tf.image.resize(rgb, [size, size], antialias=True), 0.0, 1.0)
    return (tf.ensure_shape(rgb, [size, size, 3]),
            tf.ensure_shape(resize_mask(mask, size), [size, size]))


def _match_mask(mask, hw):
    """The mask brought to the image size hw with nearest neighbour when it differs."""
    same = tf.reduce_all(tf.equal(tf.shape(mask), hw))
    return tf.cond(same, lambda: mask, lambda: resize_mask(mask, hw))
