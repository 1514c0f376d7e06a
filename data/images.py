"""Streaming, crash-proof reader of image files for `tf.data`.

Files are listed with `list_images`, split with `split_paths` and streamed with
`image_file_dataset`, which decodes them in parallel and yields float32 sRGB images `[H, W, 3]` in
`[0, 1]` at their own size. Only a bounded buffer of decoded images is ever held in memory.

Decoding (`load_rgb`) sniffs the bytes, not the file extension:

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

Unreadable files (empty, truncated, text renamed `.jpg`, broken headers, unsupported variants) are
dropped with `Dataset.ignore_errors()` and counted in a `DecodeStats`. EXIF orientation and ICC
profiles are not applied (as with a plain `PIL.Image.open`).
"""

import logging
import numbers
import os
import re

import numpy as np
import tensorflow as tf

RESIZE_MODES = ("resize", "crop")  # how a photo is brought to the square training size
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")

# An image is greyscale when its mean chroma (max(R, G, B) - min(R, G, B), averaged over pixels,
# in [0, 1] units) is below this. Grey photos stored as RGB JPEGs measure exactly 0, while the least
# colourful real photos in COCO and BSDS500 measure about 0.03.
GREYSCALE_THRESHOLD = 0.01

_JPEG_DCT_METHOD = "INTEGER_ACCURATE"
_MAX_EPOCH = 2**62

_logger = logging.getLogger(__name__)


def list_images(root):
    """Lists the image files under a folder.

    Searches recursively (following symbolic links once), matches `IMAGE_EXTENSIONS` in any letter
    case and leaves out hidden files and folders (names starting with "."), such as macOS `._x.jpg`.

    Args:
        root: Folder to search.

    Returns:
        The sorted list of file paths, each starting with `root`.

    Raises:
        FileNotFoundError: `root` does not exist.
        NotADirectoryError: `root` is a file.
        ValueError: `root` holds no image files.
    """
    root = os.fspath(root)
    if not os.path.exists(root):
        raise FileNotFoundError(
            f"The image folder '{root}' does not exist; pass an existing folder of photos "
            f"(for example the COCO train2014 folder)."
        )
    if not os.path.isdir(root):
        raise NotADirectoryError(
            f"The image folder '{root}' is a file, not a folder; pass the folder that holds "
            f"the photos."
        )
    found = []
    visited = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in visited:  # a symbolic-link cycle
            dirnames[:] = []
            continue
        visited.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(os.path.join(dirpath, name))
    if not found:
        raise ValueError(
            f"The folder '{root}' holds no image files ({', '.join(IMAGE_EXTENSIONS)}, searched "
            f"recursively); point it at a folder of photos."
        )
    return sorted(found)


def split_paths(paths, val_fraction=0.05, seed=0):
    """Splits file paths into a training and a held-out part with a seeded permutation.

    The split depends only on the set of paths (duplicates are merged), `val_fraction` and `seed`,
    not on the input order.

    Args:
        paths: File paths.
        val_fraction: Fraction held out, in (0, 1); rounded, then clamped so that each part gets at
            least one file when there are two or more.
        seed: Seed of the permutation.

    Returns:
        `(train, held_out)`, two disjoint sorted lists.

    Raises:
        ValueError: `paths` is empty or `val_fraction` is outside (0, 1).
    """
    paths = sorted(set(_check_paths(paths, "split_paths")))
    is_number = isinstance(val_fraction, numbers.Real) and not isinstance(val_fraction, bool)
    if not is_number or not 0 < val_fraction < 1:
        raise ValueError(
            f"val_fraction must be a number strictly between 0 and 1, received {val_fraction!r}."
        )
    n = len(paths)
    if n == 1:
        return list(paths), []
    n_val = min(max(int(round(n * float(val_fraction))), 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    held_out = sorted(paths[i] for i in order[:n_val])
    train = sorted(paths[i] for i in order[n_val:])
    return train, held_out


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


def _check_paths(paths, caller):
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise ValueError(
            f"{caller} expects a list of file paths, received the single path {paths!r}."
        )
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError(
            f"{caller} received an empty list of paths; call list_images(root) on a folder of "
            f"photos first."
        )
    return paths


def _check_int(value, name, minimum=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, received {value!r}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, received {value!r}.")
    return int(value)


def _epoch_order(n, seed, epoch, shuffle):
    """File indices of one epoch: a permutation keyed by (seed, epoch), or 0..n-1."""
    if not shuffle:
        return tf.range(n, dtype=tf.int64)
    keys = tf.random.stateless_uniform(
        [n], seed=tf.stack([tf.constant(seed, tf.int64), epoch]), minval=None, maxval=None,
        dtype=tf.int64, alg="philox",
    )
    return tf.argsort(keys, stable=True)


def image_file_dataset(
    paths, *, stats=None, drop_greyscale=True, shuffle=False, seed=0, repeat=False, skip=0
):
    """Streams image files as decoded float32 RGB images.

    Files are decoded in parallel (`num_parallel_calls=AUTOTUNE`, order kept); unreadable ones are
    skipped and greyscale ones (see `is_greyscale`) dropped. The stream holds only the parallel
    decode buffer in memory; add `batch`/`prefetch` downstream.

    With `shuffle`, epoch `e` visits the files in a permutation keyed by `(seed, e)`, so the stream
    is a pure function of the arguments. Without `repeat` the stream is epoch 0 only, in the same
    order on every iteration (use `repeat=True` for a fresh order each epoch).

    Iterating raises `tf.errors.InvalidArgumentError` when a whole epoch yields no image (every file
    unreadable or dropped as greyscale), so a list of junk never gives an endless, empty stream.

    Args:
        paths: Image file paths.
        stats: Optional `DecodeStats` to count files. Counts are exact for every file whose outcome
            has reached the end of the decoder, e.g. after the stream is exhausted.
        drop_greyscale: Drop (and count) images with almost no colour.
        shuffle: Reshuffle the file order each epoch.
        seed: Seed of the shuffle.
        repeat: Repeat forever.
        skip: Number of files (not images) of the shuffled, repeated file stream to skip first, to
            resume a run mid-epoch without decoding them.

    Returns:
        A `tf.data.Dataset` of float32 tensors `[H, W, 3]` in [0, 1] with varying H and W.
    """
    paths = _check_paths(paths, "image_file_dataset")
    seed = _check_int(seed, "seed") % 2**63
    skip = _check_int(skip, "skip", minimum=0)
    n = len(paths)
    first_epoch, offset = divmod(skip, n) if repeat else (0, skip)
    files = tf.constant(paths, dtype=tf.string)
    zero = tf.constant(0, tf.int64)
    no_image_message = (
        f"None of the {n} files of an epoch gave an image (each was unreadable"
        f"{' or greyscale' if drop_greyscale else ''}, e.g. '{paths[0]}'); check the list with "
        f"check_readable(paths){' or pass drop_greyscale=False' if drop_greyscale else ''}."
    )

    def epoch_items(epoch):
        # Each epoch ends with a sentinel item, so failures at the end of an epoch are counted, and
        # an epoch that yields no image stops the stream instead of spinning forever.
        order = _epoch_order(n, seed, epoch, shuffle)
        epoch_skip = tf.where(epoch == first_epoch, tf.constant(offset, tf.int64), zero)
        items = tf.data.Dataset.from_tensor_slices(tf.gather(files, order)).skip(epoch_skip)
        items = items.map(lambda path: (path, False))
        return items.concatenate(tf.data.Dataset.from_tensors((tf.constant(""), True)))

    last_epoch = _MAX_EPOCH if repeat else first_epoch + 1
    stream = tf.data.Dataset.range(first_epoch, last_epoch).flat_map(epoch_items).enumerate()

    def decode(index, item):
        path, sentinel = item
        image = tf.cond(sentinel, lambda: tf.zeros([1, 1, 3]), lambda: load_rgb(path))
        grey = is_greyscale(image) if drop_greyscale else tf.constant(False)
        return index, image, grey, sentinel

    stream = stream.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    stream = stream.ignore_errors()

    def count(state, element):
        # Items missing between two that arrive (by stream index) failed to decode. A failed epoch
        # freezes the counters and ends the stream: tf.data may pull elements ahead in a background
        # thread after the error is raised, and these must neither be counted nor decoded forever.
        last_index, last_sentinel, kept_in_epoch, failed_before = state
        index, image, grey, sentinel = element
        real = tf.logical_not(sentinel)
        kept = tf.logical_and(real, tf.logical_not(grey))
        full_epoch = tf.equal(index - last_sentinel - 1, n)
        failed = failed_before | (sentinel & full_epoch & tf.equal(kept_in_epoch, 0))
        if stats is not None:
            live = tf.cast(tf.logical_not(failed_before), tf.int64)
            checks = [
                stats.seen.assign_add(live * (index - last_index - tf.cast(sentinel, tf.int64))),
                stats.decoded.assign_add(live * tf.cast(real, tf.int64)),
                stats.greyscale.assign_add(live * tf.cast(tf.logical_and(real, grey), tf.int64)),
            ]
        else:
            checks = []
        kept_in_epoch = tf.where(sentinel, zero, kept_in_epoch + tf.cast(kept, tf.int64))
        state = (index, tf.where(sentinel, index, last_sentinel), kept_in_epoch, failed)
        with tf.control_dependencies(checks):
            return state, (tf.identity(image), grey, sentinel, failed, failed_before)

    def check(image, grey, sentinel, failed, failed_before):
        assertion = tf.debugging.Assert(tf.logical_not(failed), [no_image_message])
        with tf.control_dependencies([assertion]):
            return tf.identity(image), grey, sentinel

    minus_one = tf.constant(-1, tf.int64)
    stream = stream.scan((minus_one, minus_one, zero, tf.constant(False)), count)
    stream = stream.take_while(lambda image, grey, sentinel, failed, failed_before: ~failed_before)
    stream = stream.map(check)
    stream = stream.filter(lambda image, grey, sentinel: ~(grey | sentinel))
    return stream.map(lambda image, grey, sentinel: image)


def check_readable(paths, sample=32):
    """Decodes up to `sample` files, spread evenly over `paths`, and fails if none is an image.

    Logs a warning when some of the sampled files are unreadable.

    Args:
        paths: Image file paths.
        sample: Largest number of files to decode.

    Raises:
        ValueError: No sampled file decodes, or `paths` is empty.
    """
    paths = _check_paths(paths, "check_readable")
    sample = _check_int(sample, "sample", minimum=1)
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
