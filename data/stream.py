"""The streaming, crash-proof `tf.data` reader of a list of photo files.

`image_file_dataset` decodes the files in parallel (with `decode.load_rgb`) and yields float32 sRGB
images `[H, W, 3]` in `[0, 1]` at their own size; only a bounded buffer of decoded images is ever
held in memory. Unreadable files are dropped with `Dataset.ignore_errors()` and greyscale ones
filtered out, both counted in a `decode.DecodeStats`. The file order of each epoch is a seeded
permutation, so a run resumed mid-epoch skips exactly the files it has seen.
"""

import tensorflow as tf

from data.decode import is_greyscale, load_rgb
from data.files import check_int, check_paths

_MAX_EPOCH = 2**62


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
    paths = check_paths(paths, "image_file_dataset")
    seed = check_int(seed, "seed") % 2**63
    skip = check_int(skip, "skip", minimum=0)
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
