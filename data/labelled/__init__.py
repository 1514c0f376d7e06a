"""Labelled data for the downstream tasks: classification and semantic segmentation.

Every dataset yields the model input `L`, the L channel normalized exactly as in the pretext
(`normalize_lab(rgb_to_lab(rgb))[0]`, `[S, S, 1]` in [-1, 1]; YUV's Y in [0, 1] with
`color_space="yuv"`, for the MobileNetV2 models), with the target: multi-hot labels
`[C]` float32 (classification; one-hot where `LabelledSource.single_label`, Tiny ImageNet) or a
class-index mask `[S, S]` int32 (segmentation).

Sources (the `--dataset` value, see `parse_labelled`; one module each):
  synthetic                  the embedded procedural scenes (`data/labelled/synthetic.py`)
  voc:PATH                   a `VOCdevkit/VOC2012` folder (or the VOCdevkit folder, or its parent)
                             (`data/labelled/voc.py`)
  tfds:voc/2012              TFDS `voc/2012`, when prepared (classification only: it has no masks)
                             (`data/labelled/voc.py`)
  seg-folder:IMAGES,MASKS    an images folder and a masks folder paired by file stem
  seg-folder:TI,TM;VI,VM     separate train and val folders (e.g. CamVid's train/trainannot,
                             val/valannot); `seg-folder:ROOT` finds that layout under ROOT
                             (`data/labelled/folders.py`)
  tinyimagenet:PATH          the unpacked `tiny-imagenet-200` folder, single-label classification
                             only, with fixed splits (`data/tinyimagenet.py`)

The pieces live in their own modules of this package: masks and the one void value in `masks.py`,
image and mask pair transforms in `transforms.py`, the paper's stratified split in `splits.py`, the
`LabelledSource` they all build in `source.py`, the sources in `voc.py`, `folders.py` and
`synthetic.py`; import each name from the module that defines it.

Documented choices
------------------
* **Void.** Masks are yielded with ONE void value for every source, `VOID = 255`, whatever the
  value in the files (CamVid's 11 becomes 255); `LabelledSource.void_index` is that yielded value
  (None where a source has no void pixels: the synthetic scenes). Mask values that are neither a
  class (0..C-1) nor the file's void value are an error at start-up when the masks are scanned
  (folder sets and the paper split of VOC), and are mapped to void while streaming.
* **Masks** are read with PIL as stored indices (`np.asarray(Image.open(p))`): a palette ('P')
  PNG gives its palette indices, never colours mapped back to classes; an RGB mask is refused.
  They are only ever resized with nearest neighbour, so no new class value can appear.
* **Segmentation crops.** Training: a joint random `S x S` crop of image and mask at the stored
  resolution (the paper's random 256 x 256 crops); an image smaller than `S` is first padded on
  both sides, the image with mid-grey 0.5 and the mask with void, so padding never counts in the
  loss. Evaluation (default `eval_fit="crop"`): the deterministic centre `S x S` crop, padded the
  same way, i.e. the same scale as training; `eval_fit="resize"` instead squashes the whole
  image to `S x S` (bilinear, antialiased) and the mask with nearest neighbour.
* **Classification images** are squashed whole to `S x S` (bilinear, antialiased, like the
  pretext's default "resize" mode), for training and evaluation alike (no augmentation).
* **Paper split** (`split_mode="paper"`): all labelled images re-split 70/20/10 by iterative
  stratification, 11,987 / 3,425 / 1,713 for the 17,125 VOC trainval JPEGs and the paper's
  2,039 / 577 / 297 for the 2,913 VOC masks (the size rule is in `data/labelled/splits.py`).
  Segmentation sets are stratified over image-level classes derived from the masks (class c
  present when it covers >= `min_fraction` of the non-void pixels; background included).
* **Official splits** (`split_mode="official"`): VOC `ImageSets/Main/{train,val}.txt`
  (classification) or `ImageSets/Segmentation/{train,val}.txt`; the VOC test labels are not
  public and prior work reports on val, so `test` is the val list. A folder set with separate
  train and val folders keeps them, and its val folder is split 2:1 (stratified) into val and
  test (a test folder, when present, is the test split instead). With `split_mode="paper"` the
  folders are pooled and re-split 70/20/10; a set without a val folder is always re-split.
* **Sequence split** (`split_mode="sequence"`, folder sets of video frames such as CamVid): the
  folders are pooled and split by the frame name's prefix up to the first `_`, so that no
  near-duplicate neighbouring frames sit on both sides: test = one whole sequence (`test_sequence`,
  default 0006R0), val = a block of 15 % of the remaining frames at the end of another
  (`val_sequence`, default the longest), 5 frames before it left out, train = the rest; no seed (see
  `data/labelled/splits.py`). CamVid (SegNet's train + val folders): 307 / 55 / 101.
* **Tiny ImageNet** (`tinyimagenet:PATH`): fixed splits whatever `split_mode`: test = the val
  photos, val = the last 10 train photos of each class, train = the rest in a class-balanced
  order (every prefix holds about as many photos of each class), see `data/tinyimagenet.py`.
* **Epochs.** Training datasets make one shuffled pass per iteration (Keras iterates them once
  per epoch, reshuffled each time with a seeded order); the last batch may be partial. The
  number of items is `source.split_size(split, size)`. Evaluation datasets are one ordered pass.
  `size` caps any split to its first `size` items (in the split's order).
* **Synthetic downstream data** comes from the same renderer as the pretext but never from the
  pretext's scenes (disjoint Philox keys and index ranges; see `data/labelled/synthetic.py`).
* **Progress.** Scanning many VOC annotations or masks at start-up (over 200 files) shows a
  `keras.utils.Progbar`; `parse_labelled(..., verbose=False)` keeps it quiet.
"""

import typing

import numpy as np
import tensorflow as tf

from data import TASKS  # noqa: F401 - TASKS: the tasks of the labelled sources
from data.color import check_color_space, split_rgb
from data.labelled import folders, voc
from data.labelled.source import ParseOptions, _check_split
from data.labelled.splits import DEFAULT_TEST_SEQUENCE
from data.labelled.synthetic import parse_synthetic, synthetic_scenes
from data.labelled.masks import read_mask
from data.labelled.transforms import _match_mask, crop_pair, rescale_pair, resize_pair
from data.decode import fit_to_size, load_rgb

AUTOTUNE = tf.data.AUTOTUNE

SPLIT_MODES = ("paper", "official", "sequence")
EVAL_FITS = ("crop", "resize")

_SHUFFLE_BUFFER = 4096


# ----------------------------------------------------------------------------------------------
# Parsing a --dataset value
# ----------------------------------------------------------------------------------------------


class _Source(typing.NamedTuple):
    """One entry of `SOURCES`: the parser `parse(rest, task, options) -> LabelledSource`, whether
    the text after the prefix (`rest`) must be non-empty for the spec to be valid, and whether its
    items are video frames that `split_mode="sequence"` can split by sequence."""

    parse: typing.Callable
    needs_argument: bool
    frames: bool = False


def _parse_tinyimagenet(rest, task, options):
    from data import tinyimagenet  # it imports data.labelled.source, so it is imported when used

    return tinyimagenet.parse_tinyimagenet(rest, task, options)


# Spec prefix -> source; the prefix is everything up to and including the first ':', or the
# whole spec when it has none.
SOURCES = {
    "synthetic": _Source(parse_synthetic, needs_argument=False),
    "voc:": _Source(voc.parse_voc, needs_argument=True),
    "tfds:": _Source(voc.parse_tfds_voc, needs_argument=False),  # any other name: its own error
    "seg-folder:": _Source(folders.parse_folder, needs_argument=True, frames=True),
    "tinyimagenet:": _Source(_parse_tinyimagenet, needs_argument=True),
}


def parse_labelled(spec, task, *, seed=0, split_mode="paper", include_difficult=True,
                   void_index=None, min_fraction=0.01, num_classes=None, synthetic_classes=6,
                   tfds_data_dir=None, verbose=True, test_sequence=DEFAULT_TEST_SEQUENCE,
                   val_sequence=None):
    """Resolves a `--dataset` value into a `LabelledSource`, checking the files once, now.

    Args:
        spec: "synthetic", "voc:PATH", "tfds:voc/2012" (classification only),
            "seg-folder:IMAGES,MASKS", "seg-folder:TRAIN_IMAGES,TRAIN_MASKS;VAL_IMAGES,VAL_MASKS",
            "seg-folder:ROOT" (ROOT holding train/trainannot[, val/valannot[, test/testannot]])
            or "tinyimagenet:PATH" (classification only).
        task: "classification" or "segmentation".
        seed: Seed of the stratified re-split (Tiny ImageNet: of the train order); the sequence
            split has none.
        split_mode: "paper" (stratified 70/20/10 re-split), "official" or "sequence" (folder
            sets of video frames only; see module docs); Tiny ImageNet's splits are fixed
            whatever the other modes.
        include_difficult: VOC classification: whether objects marked difficult count.
        void_index: Void value in the mask files (default 255; CamVid uses 11).
        min_fraction: A class is present in a mask (image-level label) when it covers at least
            this fraction of the non-void pixels.
        num_classes: Folder sets: number of mask classes (default: largest non-void value + 1).
            Other sources: must match their fixed number when given.
        synthetic_classes: K of the synthetic scenes (1..8).
        tfds_data_dir: TFDS data folder for "tfds:" specs.
        verbose: Show a progress bar while many annotations or masks are scanned.
        test_sequence: `split_mode="sequence"`: the sequence that is the test split.
        val_sequence: `split_mode="sequence"`: the sequence whose last frames are the validation
            split (None: the longest other one).

    Raises:
        ValueError: unknown spec/task/mode, inconsistent options, no image/mask pairs.
        FileNotFoundError: a missing folder or file list, or TFDS voc/2012 not prepared.
    """
    if not isinstance(spec, str):
        raise ValueError(f"The dataset must be a string such as 'synthetic' or 'voc:PATH', "
                         f"received {spec!r}.")
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, received {task!r}.")
    if split_mode not in SPLIT_MODES:
        raise ValueError(f"split_mode must be one of {SPLIT_MODES}, received {split_mode!r}.")
    if not isinstance(min_fraction, (int, float)) or not 0 <= min_fraction <= 1:
        raise ValueError(f"min_fraction must be a number in [0, 1], received {min_fraction!r}.")
    if void_index is not None and (isinstance(void_index, bool)
                                   or not isinstance(void_index, (int, np.integer))
                                   or not 0 <= void_index <= 65535):
        raise ValueError(f"void_index must be None or an int in [0, 65535], received "
                         f"{void_index!r}.")
    if num_classes is not None and (isinstance(num_classes, bool)
                                    or not isinstance(num_classes, (int, np.integer))
                                    or num_classes < 1):
        raise ValueError(f"num_classes must be None or an int >= 1, received {num_classes!r}.")

    prefix, sep, rest = spec.partition(":")
    source = SOURCES.get(prefix + sep)
    if source is None or (source.needs_argument and not rest):
        raise ValueError(
            f"The dataset must be 'synthetic', 'voc:PATH', 'tfds:voc/2012', "
            f"'seg-folder:IMAGES,MASKS' (or 'seg-folder:TRAIN_IMAGES,TRAIN_MASKS;VAL_IMAGES,"
            f"VAL_MASKS') or 'tinyimagenet:PATH', received {spec!r}."
        )
    for name, value in (("test_sequence", test_sequence), ("val_sequence", val_sequence)):
        if (value is not None or name == "test_sequence") and (
                not isinstance(value, str) or not value or "_" in value):
            raise ValueError(f"{name} must be a sequence name (a frame name's prefix before its "
                             f"first '_', such as '0006R0'), received {value!r}.")
    if split_mode == "sequence" and not source.frames:
        raise ValueError(f"split_mode='sequence' splits the video frames of a 'seg-folder:' set by "
                         f"sequence, which {spec!r} has not; use split_mode='paper' or 'official'.")
    options = ParseOptions(
        seed=seed, split_mode=split_mode, include_difficult=include_difficult,
        void_index=void_index, min_fraction=min_fraction, num_classes=num_classes,
        synthetic_classes=synthetic_classes, tfds_data_dir=tfds_data_dir, verbose=verbose,
        test_sequence=test_sequence, val_sequence=val_sequence)
    return source.parse(rest, task, options)


# ----------------------------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------------------------


def _grey_input(rgb, color_space):
    return split_rgb(rgb, color_space)[0]


def _training(split, training):
    return split == "train" if training is None else bool(training)


def _check_sizes(image_size, batch_size):
    for name, value in (("image_size", image_size), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, received {value!r}.")


def _finish(ds, batch_size, color_space):
    check_color_space(color_space)
    ds = ds.batch(batch_size, num_parallel_calls=AUTOTUNE)
    ds = ds.map(lambda rgb, target: (_grey_input(rgb, color_space), target), num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def _shuffled(ds, n, seed, training, buffer=None):
    """Seeded shuffle, reshuffled on each pass (a full shuffle unless `buffer` is smaller)."""
    if training and n > 1:
        ds = ds.shuffle(n if buffer is None else min(n, buffer), seed=seed,
                        reshuffle_each_iteration=True)
    return ds


def classification_dataset(source, split, *, image_size, batch_size, seed=0, training=None,
                           size=None, color_space="lab"):
    """Batched `(L [B,S,S,1] float32, labels [B,C] float32)` of one split (`color_space="yuv"`:
    YUV's Y in [0, 1] instead of normalized L, for the MobileNetV2 models).

    `training` (default: split == "train") shuffles with `seed`, reshuffling on each pass; each
    pass (epoch) visits the split's `source.split_size(split, size)` items once.
    """
    _check_split(source, split)
    _check_sizes(image_size, batch_size)
    training = _training(split, training)
    if source.kind == "synthetic":
        scenes = synthetic_scenes(source, split, image_size, seed, training, size)
        if source.task == "segmentation":
            def to_pair(scene):  # the K + 1 segmentation classes, background included
                hist = tf.math.bincount(scene["mask"], minlength=source.num_classes,
                                        maxlength=source.num_classes)
                return scene["image"], tf.cast(hist > 0, tf.float32)
        else:
            def to_pair(scene):
                return scene["image"], scene["labels"]
        return _finish(scenes.map(to_pair, num_parallel_calls=AUTOTUNE), batch_size, color_space)

    items = source.items(split, size)
    labels = source.label_matrix(split, size)
    if source.kind == "tfds":
        ds = voc.tfds_voc_images(source, items, labels)
        decode = _decode_jpeg_bytes
    else:
        paths = [source.image_paths[item] for item in items]
        ds = tf.data.Dataset.from_tensor_slices((tf.constant(paths, tf.string), labels))
        decode = load_rgb
    # File names are shuffled in full; encoded TFDS records through a bounded buffer.
    buffer = _SHUFFLE_BUFFER if source.kind == "tfds" else None
    ds = _shuffled(ds, len(items), seed, training, buffer)

    def load(image, label):
        rgb = fit_to_size(decode(image), image_size, "resize")
        return rgb, label

    ds = ds.map(load, num_parallel_calls=AUTOTUNE).ignore_errors(log_warning=True)
    return _finish(ds, batch_size, color_space)


def _decode_jpeg_bytes(raw):
    image = tf.io.decode_image(raw, channels=3, expand_animations=False)
    return tf.image.convert_image_dtype(image, tf.float32)


def segmentation_dataset(source, split, *, image_size, batch_size, seed=0, training=None,
                         size=None, eval_fit="crop", scale_shorter=None, color_space="lab"):
    """Batched `(L [B,S,S,1] float32, mask [B,S,S] int32)` of one split (`color_space="yuv"`: Y).

    Mask values are class indices 0..C-1 and `VOID` (255) for void and padding. Training
    (default: split == "train") takes joint random crops and shuffles with `seed`; evaluation
    takes the centre crop (`eval_fit="crop"`) or squashes the whole image (`"resize"`).
    `scale_shorter` first scales each pair so its shorter side has that many pixels (None keeps the
    stored resolution, the paper's protocol at 256 px on VOC).
    """
    _check_split(source, split)
    _check_sizes(image_size, batch_size)
    if eval_fit not in EVAL_FITS:
        raise ValueError(f"eval_fit must be one of {EVAL_FITS}, received {eval_fit!r}.")
    if source.task != "segmentation":
        raise ValueError(f"segmentation_dataset needs a source parsed for task='segmentation', "
                         f"received one for {source.task!r}.")
    training = _training(split, training)
    if source.kind == "synthetic":
        scenes = synthetic_scenes(source, split, image_size, seed, training, size)
        ds = scenes.map(lambda scene: (scene["image"], scene["mask"]),
                        num_parallel_calls=AUTOTUNE)
        return _finish(ds, batch_size, color_space)

    items = source.items(split, size)
    image_paths = [source.image_paths[item] for item in items]
    mask_paths = [source.mask_paths[item] for item in items]
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(image_paths, tf.string), tf.constant(mask_paths, tf.string)))
    ds = _shuffled(ds, len(items), seed, training)
    crop_seeds = tf.data.Dataset.counter().map(lambda i: tf.stack([tf.cast(seed, tf.int64), i]))
    ds = tf.data.Dataset.zip(ds, crop_seeds)
    file_void, num_classes = source.file_void_index, source.num_classes

    def read(path):
        return read_mask(path, file_void, num_classes)

    def load(paths, crop_seed):
        image_path, mask_path = paths
        rgb = load_rgb(image_path)
        mask = tf.numpy_function(read, [mask_path], tf.int32, stateful=False)
        mask = _match_mask(tf.ensure_shape(mask, [None, None]), tf.shape(rgb)[:2])
        if scale_shorter:
            rgb, mask = rescale_pair(rgb, mask, scale_shorter)
        if training:
            return crop_pair(rgb, mask, image_size, crop_seed)
        if eval_fit == "crop":
            return crop_pair(rgb, mask, image_size)
        return resize_pair(rgb, mask, image_size)

    ds = ds.map(load, num_parallel_calls=AUTOTUNE).ignore_errors(log_warning=True)
    return _finish(ds, batch_size, color_space)
