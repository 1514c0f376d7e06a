"""Decoding one photo file into float32 sRGB `[H, W, 3]` in `[0, 1]`, and counting what came of it.

`load_rgb` decodes a file (counting it in a `DecodeStats` when given one), `is_greyscale` tells a
photo with almost no colour, `check_readable` fails early on a list with no readable photo, and
`fit_to_size` brings a decoded photo to the square training size.

Decoding sniffs the bytes, not the file extension:

* JPEG: `tf.io.decode_jpeg(dct_method="INTEGER_ACCURATE")`, which matches PIL's decoder bit for
  bit (TF's default fast DCT is about twice as fast but off by 1.6/255 on average, up to 17/255).
  Greyscale JPEGs are repeated to three channels. CMYK is converted by TF assuming Adobe-inverted
  storage (as Photoshop and PIL write it), with the same formula as PIL's `convert("RGB")`.
  A truncated JPEG, even one missing only its end-of-image marker, raises in TF's decoder (it is not
  asked to recover truncated data), so it is skipped, never returned half grey.
* BMP: `tf.io.decode_bmp`; the 4th byte of a 32-bit BMP is ignored (it is usually a reserved zero,
  and PIL ignores it too), and 8-bit palette BMPs are mapped through their colour table (TF alone
  would return the palette indices as grey). Variants TF rejects (1-bit, for one) are skipped.
* Everything else (PNG, GIF, ...): `tf.io.decode_image(dtype=float32, expand_animations=False)`,
  so 16-bit PNGs keep their precision (value / 65535), palette PNGs are expanded, and a GIF gives
  its first frame (GIF transparency is ignored, as in PIL's `convert("RGB")`).
* Alpha (RGBA, LA, palette PNG with tRNS) is composited over white: `rgb * a + (1 - a)`.

Unreadable files (empty, truncated, text renamed `.jpg`, broken headers, unsupported variants)
raise `tf.errors.OpError`; a stream skips them and counts them in a `DecodeStats`. EXIF orientation
and ICC profiles are not applied (as with a plain `PIL.Image.open`).
"""

import logging
import re

import numpy as np
import tensorflow as tf

from data.files import check_int, check_paths

RESIZE_MODES = ("resize", "crop")  # how a photo is brought to the square training size

# An image is greyscale when its mean chroma (max(R, G, B) - min(R, G, B), averaged over pixels,
# in [0, 1] units) is below this. Grey photos stored as RGB JPEGs measure exactly 0, while the least
# colourful real photos in COCO and BSDS500 measure about 0.03.
GREYSCALE_THRESHOLD = 0.01

_JPEG_DCT_METHOD = "INTEGER_ACCURATE"

_logger = logging.getLogger(__name__)


class DecodeStats:
    """Counters of a decoding stream, kept in host `tf.Variable`s.

    The variables (int64, on the CPU) are updated with atomic `assign_add` ops from inside `tf.data`
    functions, so parallel maps may share one instance. Create it eagerly, outside `tf.function`.
    Counts accumulate over every stream that uses the instance (and every epoch) until `reset()`.

    Attributes:
        seen: Files whose decoding was attempted.
        decoded: Files decoded into an image.
        greyscale: Decoded images dropped as greyscale.
    """

    _NAMES = ("seen", "decoded", "greyscale")

    def __init__(self):
        with tf.device("/CPU:0"), tf.init_scope():
            for name in self._NAMES:
                variable = tf.Variable(0, dtype=tf.int64, trainable=False, name=f"images_{name}")
                setattr(self, name, variable)

    @property
    def skipped(self):
        """Unreadable files skipped (`seen - decoded`), an int64 tensor."""
        return self.seen - self.decoded

    def reset(self):
        """Sets every counter back to zero."""
        for name in self._NAMES:
            getattr(self, name).assign(0)

    def as_dict(self):
        """Returns the counters as Python ints: seen, decoded, skipped and greyscale."""
        seen, decoded, grey = (int(getattr(self, name).numpy()) for name in self._NAMES)
        return {"seen": seen, "decoded": decoded, "skipped": seen - decoded, "greyscale": grey}

    def summary(self):
        """Returns one line, e.g. 'images: 100 read, 2 unreadable skipped, 1 greyscale dropped'."""
        c = self.as_dict()
        return (
            f"images: {c['seen']} read, {c['skipped']} unreadable skipped, "
            f"{c['greyscale']} greyscale dropped"
        )

    def __repr__(self):
        return f"DecodeStats({self.as_dict()})"


def _le_uint(raw, offset, nbytes):
    """Reads a little-endian unsigned integer from a string tensor (fails on short input)."""
    data = tf.io.decode_raw(tf.strings.substr(raw, offset, nbytes), tf.uint8)
    data = tf.ensure_shape(data, [nbytes])
    weights = tf.constant([256**i for i in range(nbytes)], tf.int64)
    return tf.reduce_sum(tf.cast(data, tf.int64) * weights)


def _grey_to_rgb(image):
    """Repeats a 1-channel image to 3 channels and passes 3-channel images through."""
    return tf.cond(
        tf.shape(image)[-1] == 1,
        lambda: tf.tile(image[..., :1], [1, 1, 3]),
        lambda: image[..., :3],
    )


def _decode_bmp(raw):
    """Decodes a BMP to uint8 RGB, applying 8-bit colour tables and ignoring a 4th byte."""
    image = tf.io.decode_bmp(raw, channels=0)
    bits = _le_uint(raw, 28, 2)

    def apply_palette():
        header_size = _le_uint(raw, 14, 4)
        header_ok = tf.debugging.assert_greater_equal(
            header_size, tf.constant(40, tf.int64), message="BMP header too old for a colour table"
        )
        with tf.control_dependencies([header_ok]):
            colours = _le_uint(raw, 46, 4)
        colours = tf.where(colours == 0, tf.constant(256, tf.int64), colours)
        table = tf.io.decode_raw(tf.strings.substr(raw, 14 + header_size, 4 * colours), tf.uint8)
        table = tf.reshape(table, [-1, 4])[:, 2::-1]  # BGRX -> RGB
        # tf.gather fails (and the file is skipped) on an index past the end of the table.
        return tf.gather(table, tf.cast(image[..., 0], tf.int32))

    return tf.cond(bits == 8, apply_palette, lambda: _grey_to_rgb(image))


def _decode_other(raw):
    """Decodes PNG, GIF and other formats to float RGB, compositing any alpha over white."""
    image = tf.io.decode_image(raw, dtype=tf.float32, expand_animations=False)
    channels = tf.shape(image)[-1]
    alpha = tf.cond(
        tf.equal(channels % 2, 0),  # LA or RGBA
        lambda: image[..., -1:],
        lambda: tf.ones_like(image[..., :1]),
    )
    colour = tf.cond(
        channels >= 3, lambda: image[..., :3], lambda: tf.tile(image[..., :1], [1, 1, 3])
    )
    return tf.clip_by_value(colour * alpha + (1.0 - alpha), 0.0, 1.0)  # clip float rounding


def _decode_bytes(raw):
    """Decodes encoded image bytes to float32 RGB `[H, W, 3]` in [0, 1]; raises on bad data."""
    is_jpeg = tf.io.is_jpeg(raw)
    is_bmp = tf.equal(tf.strings.substr(raw, 0, 2), b"BM")

    def jpeg():  # libjpeg itself turns greyscale, YCbCr and CMYK into RGB
        image = tf.io.decode_jpeg(raw, channels=3, dct_method=_JPEG_DCT_METHOD)
        return tf.image.convert_image_dtype(image, tf.float32)

    def bmp():
        return tf.image.convert_image_dtype(_decode_bmp(raw), tf.float32)

    image = tf.case(
        [(is_jpeg, jpeg), (is_bmp, bmp)], default=lambda: _decode_other(raw), exclusive=False
    )
    image = tf.ensure_shape(image, [None, None, 3])
    size_ok = tf.debugging.assert_positive(tf.shape(image)[:2], message="decoded image is empty")
    with tf.control_dependencies([size_ok]):
        return tf.identity(image)


def load_rgb(path, stats=None):
    """Reads and decodes one image file; works eagerly and inside `Dataset.map`.

    Unreadable files raise `tf.errors.OpError` (skip them with `Dataset.ignore_errors()`); this
    includes every truncated JPEG, PNG or GIF, which TF's decoders reject rather than half-decode.

    Args:
        path: Scalar string tensor or str.
        stats: Optional `DecodeStats`; `seen` is incremented before reading and `decoded` after a
            successful decode, so `seen - decoded` counts failures (plus any decode in flight).

    Returns:
        float32 sRGB tensor `[H, W, 3]` in [0, 1], H, W >= 1.
    """
    path = tf.convert_to_tensor(path, dtype=tf.string)
    deps = [] if stats is None else [stats.seen.assign_add(1)]
    with tf.control_dependencies(deps):
        raw = tf.io.read_file(path)
    image = _decode_bytes(raw)
    if stats is None:
        return image
    with tf.control_dependencies([image]):  # count only once the decode has succeeded
        counted = stats.decoded.assign_add(1)
    with tf.control_dependencies([counted]):
        return tf.identity(image)


def is_greyscale(rgb, threshold=GREYSCALE_THRESHOLD):
    """Tells whether an image carries (almost) no colour.

    Args:
        rgb: One RGB image `[H, W, 3]`, float in [0, 1] (integer images are rescaled).
        threshold: Smallest mean chroma, `max(R, G, B) - min(R, G, B)` averaged over pixels, that
            counts as colour; see `GREYSCALE_THRESHOLD`.

    Returns:
        A scalar bool tensor, True when the mean chroma is below `threshold`.
    """
    rgb = tf.convert_to_tensor(rgb)
    rgb = tf.image.convert_image_dtype(rgb, tf.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]  # element-wise: 2x faster than reducing axis -1
    chroma = tf.maximum(tf.maximum(r, g), b) - tf.minimum(tf.minimum(r, g), b)
    return tf.reduce_mean(chroma) < threshold


def _error_reason(error):
    """Returns the first sentence of a TF error message, without its function-node prefix."""
    message = (error.message or type(error).__name__).strip().splitlines()[0]
    message = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", message)
    message = re.sub(r"\s*\[Op:[^\]]*\].*$", "", message)
    return message.split(". ")[0].rstrip(".") or type(error).__name__


def check_readable(paths, sample=32):
    """Decodes up to `sample` files, spread evenly over `paths`, and fails if none is an image.

    Logs a warning when some of the sampled files are unreadable.

    Args:
        paths: Image file paths.
        sample: Largest number of files to decode.

    Raises:
        ValueError: No sampled file decodes, or `paths` is empty.
    """
    paths = check_paths(paths, "check_readable")
    sample = check_int(sample, "sample", minimum=1)
    spread = np.linspace(0, len(paths) - 1, min(sample, len(paths))).round().astype(int)
    picks = sorted(set(spread.tolist()))
    failures = []
    for i in picks:
        try:
            load_rgb(paths[i])
        except tf.errors.OpError as error:
            failures.append((paths[i], _error_reason(error)))
    if len(failures) == len(picks):
        path, reason = failures[0]
        raise ValueError(
            f"None of the {len(picks)} sampled files is a readable image "
            f"(e.g. '{path}': {reason}); point the data folder at JPEG, PNG, BMP or GIF photos."
        )
    if failures:
        _logger.warning(
            "%d of %d sampled image files are unreadable and will be skipped (e.g. '%s').",
            len(failures), len(picks), failures[0][0],
        )


def fit_to_size(rgb, image_size, mode="resize", random_crop=False, flip=False, seed=None):
    """Brings one RGB image [H, W, 3] to [image_size, image_size, 3].

    mode "resize" squashes the whole image to the size (the paper); "crop" scales the shorter side to
    the size and takes a centre crop, or a random one when `random_crop`. Images smaller than the
    size are scaled up. `seed` is a stateless seed pair, needed for the random options.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"mode must be one of {RESIZE_MODES}, received mode={mode!r}.")
    size = tf.constant([image_size, image_size])
    if mode == "resize":
        out = tf.image.resize(rgb, size, antialias=True)
    else:
        hw = tf.cast(tf.shape(rgb)[:2], tf.float32)
        scale = float(image_size) / tf.reduce_min(hw)
        new_hw = tf.maximum(tf.cast(tf.math.ceil(hw * scale), tf.int32), image_size)
        out = tf.image.resize(rgb, new_hw, antialias=True)
        if random_crop:
            out = tf.image.stateless_random_crop(out, [image_size, image_size, 3], seed=seed)
        else:
            top = (new_hw[0] - image_size) // 2
            left = (new_hw[1] - image_size) // 2
            out = out[top:top + image_size, left:left + image_size]
    if flip:
        out = tf.image.stateless_random_flip_left_right(out, seed=seed[::-1] if seed is not None else None)
    return tf.clip_by_value(tf.ensure_shape(out, [image_size, image_size, 3]), 0.0, 1.0)
