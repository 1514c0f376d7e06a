"""Oxford-IIIT Pet (TFDS `oxford_iiit_pet`) for the seed-003 experiment: colorize and segment.

TFDS 4.9.10's builder (version 4.0.0) has the splits "train" (the 3,680 trainval images) and
"test" (3,669), and the features `image` (uint8 [H, W, 3]) and `segmentation_mask` (uint8
[H, W, 1], the trimap: 1 = pet, 2 = background, 3 = border/unclassified), besides `label`,
`species`, `file_name` and `head_bbox`, which are unused here.

`pets_dataset` yields, per batch, the colorizer input and both targets:

* `color_space="lab"` (the pix2pix multitask U-Net): `(L [B,S,S,1], {"ab": [B,S,S,2], "mask":
  [B,S,S] int32})`, L and ab normalized into [-1, 1] exactly as the pretext
  (`normalize_lab(rgb_to_lab(rgb))`);
* `color_space="yuv"` (the MobileNetV2 U-Net, the seed's): `(Y [B,S,S,1] in [0, 1], {"uv":
  [B,S,S,2], "mask": ...})` from `tf.image.rgb_to_yuv`.

Documented choices: the trimap values 1, 2, 3 become classes 0, 1, 2 (`PETS_CLASSES`, three
classes as in the seed and TensorFlow's segmentation tutorial); any other value (none in the real
data) becomes `VOID` = 255. Images are squashed whole to S x S (bilinear, antialiased, as the
pretext's default "resize" mode) and masks resized with nearest neighbour, so no new class value
appears. Training (by default for a split made of "train" only) shuffles files and examples with
`seed` and flips image and mask together at random (different flips each pass); evaluation is
one ordered pass. Each iteration is one pass; the last batch may be partial.
"""

import re

import tensorflow as tf

from data.color import TARGET_KEYS, check_color_space, split_rgb
from data.labelled.masks import VOID
from data.tfds_sources import prepared_builder
from data.decode import fit_to_size

AUTOTUNE = tf.data.AUTOTUNE

TFDS_NAME = "oxford_iiit_pet"
PETS_SPLITS = ("train", "test")
PETS_CLASSES = ("pet", "background", "border")
NUM_CLASSES = len(PETS_CLASSES)
_SHUFFLE_BUFFER = 1024

# Trimap value -> class: 1, 2, 3 -> 0, 1, 2; everything else -> VOID.
_TRIMAP_LUT = [VOID, 0, 1, 2] + [VOID] * 252


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, received {name}={value!r}.")


def _split_parts(split):
    """Base split names of a TFDS split string ("train", "train[:90%]", "train+test", ...)."""
    if not isinstance(split, str) or not split:
        raise ValueError(f"split must be a TFDS split string of {PETS_SPLITS}, e.g. 'train' or "
                         f"'train[:90%]', received split={split!r}.")
    bases = [re.sub(r"\[.*\]$", "", part.strip()) for part in split.split("+")]
    bad = [base for base in bases if base not in PETS_SPLITS]
    if bad:
        raise ValueError(f"{TFDS_NAME} has the splits {PETS_SPLITS}, received split={split!r}.")
    return bases


def pets_builder(data_dir=None):
    """The TFDS builder of `oxford_iiit_pet`; FileNotFoundError when it is not prepared."""
    return prepared_builder(TFDS_NAME, data_dir)


def trimap_to_classes(mask):
    """uint8 trimap (1 pet, 2 background, 3 border) -> int32 classes 0, 1, 2; other values -> VOID."""
    mask = tf.cast(mask, tf.int32)
    return tf.gather(tf.constant(_TRIMAP_LUT, tf.int32), tf.clip_by_value(mask, 0, 255))


def _example(image_size):
    def fit(example):
        rgb = tf.image.convert_image_dtype(example["image"], tf.float32)
        rgb = fit_to_size(rgb[..., :3], image_size, mode="resize")
        mask = tf.image.resize(example["segmentation_mask"], [image_size, image_size],
                               method="nearest")
        mask = trimap_to_classes(tf.ensure_shape(mask[..., 0], [image_size, image_size]))
        return rgb, mask
    return fit


def _flip(pair, draw):
    rgb, mask = pair
    flip = tf.equal(draw % 2, 1)
    rgb = tf.cond(flip, lambda: tf.reverse(rgb, axis=[1]), lambda: rgb)
    mask = tf.cond(flip, lambda: tf.reverse(mask, axis=[1]), lambda: mask)
    return rgb, mask


def _to_targets(color_space):
    key = TARGET_KEYS[color_space]

    def convert(rgb, mask):
        grey, colour = split_rgb(rgb, color_space)
        return grey, {key: colour, "mask": mask}
    return convert


def pets_dataset(split, image_size, batch_size, data_dir=None, training=None, seed=0,
                 color_space="lab", size=None):
    """Batches of Oxford-IIIT Pet images and trimaps for the multitask colorizer.

    Args:
        split: "train", "test", or a TFDS split string over them ("train[:90%]", "train[90%:]").
        image_size: Side S of the yielded images and masks.
        batch_size: Examples per batch.
        data_dir: TFDS data folder (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).
        training: Shuffle and flip; default True when the split is made of "train" only.
        seed: Seed of the shuffles and flips.
        color_space: "lab" -> (L, {"ab", "mask"}); "yuv" -> (Y, {"uv", "mask"}) (see module docs).
        size: Keep only the first `size` examples of the split (None: all).

    Returns:
        A `tf.data.Dataset` of (input [B,S,S,1] float32, {colour [B,S,S,2] float32, "mask" [B,S,S]
        int32 in {0, 1, 2} or VOID}).

    Raises:
        ValueError: a bad argument.
        FileNotFoundError: the dataset is not prepared in `data_dir`.
    """
    bases = _split_parts(split)
    _check_int("image_size", image_size, 1)
    _check_int("batch_size", batch_size, 1)
    _check_int("seed", seed, 0)
    if size is not None:
        _check_int("size", size, 0)
    check_color_space(color_space)
    if training is None:
        training = all(base == "train" for base in bases)
    import tensorflow_datasets as tfds

    builder = pets_builder(data_dir)
    ds = builder.as_dataset(split=split, shuffle_files=bool(training),
                            read_config=tfds.ReadConfig(shuffle_seed=seed))
    if size is not None:
        ds = ds.take(size)
    ds = ds.map(_example(image_size), num_parallel_calls=AUTOTUNE, deterministic=True)
    if training:
        ds = ds.shuffle(_SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
        draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip(ds, draws).map(_flip, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.map(_to_targets(color_space), num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.prefetch(AUTOTUNE)
