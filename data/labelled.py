"""Labelled data for the downstream tasks: multi-label classification and semantic segmentation.

Every dataset yields the model input `L`, the L channel normalized exactly as in the pretext
(`normalize_lab(rgb_to_lab(rgb))[0]`, `[S, S, 1]` in [-1, 1]; YUV's Y in [0, 1] with
`color_space="yuv"`, for the MobileNetV2 models), with the target: multi-hot labels
`[C]` float32 (classification) or a class-index mask `[S, S]` int32 (segmentation).

Sources (the `--dataset` value, see `parse_labelled`):
  synthetic                  the embedded procedural scenes (`data/synthetic.py`)
  voc:PATH                   a `VOCdevkit/VOC2012` folder (or the VOCdevkit folder, or its parent)
  tfds:voc/2012              TFDS `voc/2012`, when prepared (classification only: it has no masks)
  seg-folder:IMAGES,MASKS    an images folder and a masks folder paired by file stem
  seg-folder:TI,TM;VI,VM     separate train and val folders (e.g. CamVid's train/trainannot,
                             val/valannot); `seg-folder:ROOT` finds that layout under ROOT

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
* **Paper split** (`paper_split`): all labelled images re-split 70/20/10 by iterative
  stratification for multi-label data (Sechidis et al. 2011), so each split keeps the class
  distribution; deterministic given the seed. Sizes: train = n - ceil(0.3 n), then of the rest
  test = ceil(rest / 3) and val = rest - test (the remainder rule of two successive
  `train_test_split` calls), which gives 11,987 / 3,425 / 1,713 for the 17,125 VOC trainval
  JPEGs. The paper's segmentation split of the 2,913 VOC masks, 2,039 / 577 / 297, is not a
  rounding of 70/20/10 (577 / 2913 = 19.8 %), so `PAPER_SPLIT_SIZES` holds it verbatim. Each
  split gets at least one item when n >= 3. Segmentation sets are stratified over image-level
  classes derived from the masks (class c present when it covers >= `min_fraction` of the
  non-void pixels; background included).
* **Official splits** (`split_mode="official"`): VOC `ImageSets/Main/{train,val}.txt`
  (classification) or `ImageSets/Segmentation/{train,val}.txt`; the VOC test labels are not
  public and prior work reports on val, so `test` is the val list. A folder set with separate
  train and val folders keeps them, and its val folder is split 2:1 (stratified) into val and
  test (a test folder, when present, is the test split instead). With `split_mode="paper"` the
  folders are pooled and re-split 70/20/10; a set without a val folder is always re-split.
* **Epochs.** Training datasets make one shuffled pass per iteration (Keras iterates them once
  per epoch, reshuffled each time with a seeded order); the last batch may be partial. The
  number of items is `source.split_size(split, size)`. Evaluation datasets are one ordered pass.
  `size` caps any split to its first `size` items (in the split's order).
* **Synthetic downstream data** comes from the same renderer as the pretext but never from the
  pretext's scenes: scene `i` of the pretext is Philox-keyed by `(seed, i)` with the run seed
  (default 0, val from index 2**40), while every downstream scene is keyed by
  `(SYNTHETIC_DOWNSTREAM_SEED, i)`, a constant outside the 32-bit range of run seeds (so the
  downstream sets are also the same whatever the run seed, which only changes the shuffle).
  Train, val and test use the disjoint index ranges [0, n), [2**41, 2**41 + n) and
  [2**42, 2**42 + n); default sizes `SYNTHETIC_SPLIT_SIZES`. Classification labels are the
  renderer's multi-hot labels (K classes); segmentation masks have K + 1 classes, 0 = background,
  and no void.
"""

import concurrent.futures
import dataclasses
import logging
import math
import os
import xml.etree.ElementTree as ET

import numpy as np
import tensorflow as tf

from cgan_colorization.color import check_color_space, split_rgb
from data import images, synthetic
from data.pipeline import fit_to_size
from data.tfds_sources import prepared_builder

AUTOTUNE = tf.data.AUTOTUNE

VOID = 255  # the one void value of every yielded mask

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)
VOC_VOID = 255

SPLITS = ("train", "val", "test")
TASKS = ("classification", "segmentation")
SPLIT_MODES = ("paper", "official")
EVAL_FITS = ("crop", "resize")

PAPER_FRACTIONS = (0.7, 0.2, 0.1)
# The paper's split sizes for its two labelled sets, used verbatim for the default fractions.
PAPER_SPLIT_SIZES = {17125: (11987, 3425, 1713), 2913: (2039, 577, 297)}

SYNTHETIC_DOWNSTREAM_SEED = 2**32 + 7  # no 32-bit run seed (the pretext's) can equal it
SYNTHETIC_STARTS = {"train": 0, "val": 2**41, "test": 2**42}
SYNTHETIC_SPLIT_SIZES = {"train": 2048, "val": 512, "test": 512}

PAD_VALUE = 0.5  # image padding (mid-grey); masks are padded with VOID
_TFDS_VOC = "voc/2012"
_TFDS_POOL = "train+validation"
_SHUFFLE_BUFFER = 4096
_MASK_READ_THREADS = 8

_logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# The source
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class LabelledSource:
    """What a `--dataset` value resolves to for one task.

    Attributes:
        name: Short readable name, e.g. "voc2012" or "synthetic".
        num_classes: Classification: number of labels; segmentation: number of mask classes.
        class_names: Name of each class (segmentation: index c is mask value c).
        void_index: Void value of the yielded masks (`VOID`), or None when there is none (the
            synthetic scenes, every classification source).
        splits: Split name -> list of items (VOC ids, image paths of a folder set, TFDS record
            indices), or None for the synthetic scenes.
        task: "classification" or "segmentation".
        kind: "synthetic", "voc", "folder" or "tfds".
        image_paths: item -> image file.
        mask_paths: item -> mask file (segmentation).
        labels: item -> float32 multi-hot [num_classes] (segmentation: classes present in the
            mask, from `min_fraction`); may be empty for official VOC segmentation splits.
        file_void_index: Void value in the mask files (e.g. 11 for CamVid), mapped to `VOID`.
        split_mode: "paper" or "official".
        synthetic_classes: K of the synthetic scenes.
        tfds_data_dir: TFDS data folder of a "tfds" source.
        root: The resolved folder(s) the data came from.
    """

    name: str
    num_classes: int
    class_names: list
    void_index: int | None
    splits: dict
    task: str = "classification"
    kind: str = "synthetic"
    image_paths: dict = dataclasses.field(default_factory=dict)
    mask_paths: dict = dataclasses.field(default_factory=dict)
    labels: dict = dataclasses.field(default_factory=dict)
    file_void_index: int | None = None
    split_mode: str = "paper"
    synthetic_classes: int | None = None
    tfds_data_dir: str | None = None
    root: str | None = None

    def split_size(self, split, size=None):
        """Number of items one pass over `split` yields (with the same `size` cap as the data)."""
        _check_split(self, split)
        n = SYNTHETIC_SPLIT_SIZES[split] if self.splits[split] is None else len(self.splits[split])
        if size is not None:
            n = min(n, _check_size(size))
        return n

    def items(self, split, size=None):
        """The items of `split` (capped to `size`); None for the synthetic scenes."""
        _check_split(self, split)
        items = self.splits[split]
        if items is None:
            return None
        return list(items[:_check_size(size)] if size is not None else items)

    def label_matrix(self, split, size=None):
        """float32 [n, num_classes] multi-hot labels of the items of `split`."""
        items = self.items(split, size)
        if items is None:
            raise ValueError("The synthetic scenes have no stored labels; they come with the data.")
        missing = [item for item in items[:1] if item not in self.labels]
        if missing:
            raise ValueError(f"No image-level labels are stored for the {split} split of "
                             f"{self.name} (e.g. {missing[0]!r}).")
        if not items:
            return np.zeros([0, self.num_classes], np.float32)
        return np.stack([self.labels[item] for item in items]).astype(np.float32)

    def summary(self):
        """One line, e.g. 'voc2012 classification (paper split): 20 classes, train 11987, ...'."""
        sizes = ", ".join(f"{split} {self.split_size(split)}" for split in SPLITS)
        void = f", void {self.void_index}" if self.void_index is not None else ""
        return (f"{self.name} {self.task} ({self.split_mode} split): {self.num_classes} "
                f"classes{void}, {sizes}")


def _check_split(source, split):
    if split not in source.splits:
        raise ValueError(f"split must be one of {tuple(source.splits)}, received {split!r}.")


def _check_size(size):
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
        raise ValueError(f"size must be None or an int >= 0, received {size!r}.")
    return int(size)


# ----------------------------------------------------------------------------------------------
# Parsing a --dataset value
# ----------------------------------------------------------------------------------------------


def parse_labelled(spec, task, *, seed=0, split_mode="paper", include_difficult=True,
                   void_index=None, min_fraction=0.01, num_classes=None, synthetic_classes=6,
                   tfds_data_dir=None):
    """Resolves a `--dataset` value into a `LabelledSource`, checking the files once, now.

    Args:
        spec: "synthetic", "voc:PATH", "tfds:voc/2012" (classification only),
            "seg-folder:IMAGES,MASKS", "seg-folder:TRAIN_IMAGES,TRAIN_MASKS;VAL_IMAGES,VAL_MASKS"
            or "seg-folder:ROOT" (ROOT holding train/trainannot[, val/valannot[, test/testannot]]).
        task: "classification" or "segmentation".
        seed: Seed of the stratified re-split.
        split_mode: "paper" (stratified 70/20/10 re-split) or "official" (see module docs).
        include_difficult: VOC classification: whether objects marked difficult count.
        void_index: Void value in the mask files (default 255; CamVid uses 11).
        min_fraction: A class is present in a mask (image-level label) when it covers at least
            this fraction of the non-void pixels.
        num_classes: Folder sets: number of mask classes (default: largest non-void value + 1).
            Other sources: must match their fixed number when given.
        synthetic_classes: K of the synthetic scenes (1..8).
        tfds_data_dir: TFDS data folder for "tfds:" specs.

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

    if spec == "synthetic":
        return _parse_synthetic(task, split_mode, num_classes, synthetic_classes)
    kind, sep, rest = spec.partition(":")
    if sep and rest and kind == "voc":
        return _parse_voc(os.path.expanduser(rest), task, seed=seed, split_mode=split_mode,
                          include_difficult=include_difficult, void_index=void_index,
                          min_fraction=min_fraction, num_classes=num_classes)
    if sep and kind == "tfds":
        if rest != _TFDS_VOC:
            raise ValueError(f"Only 'tfds:{_TFDS_VOC}' is a labelled TFDS source, received "
                             f"{spec!r}.")
        if task != "classification":
            raise ValueError(f"TFDS {_TFDS_VOC} has no segmentation masks, so {spec!r} serves "
                             f"only classification; pass --dataset voc:PATH/VOCdevkit for "
                             f"segmentation.")
        return _parse_tfds_voc(seed=seed, split_mode=split_mode,
                               include_difficult=include_difficult, num_classes=num_classes,
                               data_dir=tfds_data_dir)
    if sep and rest and kind == "seg-folder":
        return _parse_folder(rest, task, seed=seed, split_mode=split_mode,
                             void_index=VOC_VOID if void_index is None else int(void_index),
                             min_fraction=min_fraction, num_classes=num_classes)
    raise ValueError(
        f"The dataset must be 'synthetic', 'voc:PATH', 'tfds:voc/2012' or "
        f"'seg-folder:IMAGES,MASKS' (or 'seg-folder:TRAIN_IMAGES,TRAIN_MASKS;VAL_IMAGES,"
        f"VAL_MASKS'), received {spec!r}."
    )


def _check_fixed_classes(num_classes, expected, what):
    if num_classes is not None and num_classes != expected:
        raise ValueError(f"{what} has {expected} classes, received num_classes={num_classes!r}.")


def _parse_synthetic(task, split_mode, num_classes, synthetic_classes):
    if (isinstance(synthetic_classes, bool) or not isinstance(synthetic_classes, (int, np.integer))
            or not 1 <= synthetic_classes <= synthetic.MAX_CLASSES):
        raise ValueError(f"synthetic_classes must be an int in [1, {synthetic.MAX_CLASSES}], "
                         f"received {synthetic_classes!r}.")
    k = int(synthetic_classes)
    names = list(synthetic.SYNTHETIC_CLASS_NAMES[:k])
    if task == "segmentation":
        names = ["background"] + names
    _check_fixed_classes(num_classes, len(names), f"The synthetic {task} set")
    return LabelledSource(
        name="synthetic", num_classes=len(names), class_names=names, void_index=None,
        splits={split: None for split in SPLITS}, task=task, kind="synthetic",
        split_mode=split_mode, synthetic_classes=k,
    )


# ---------------------------------------------------------------------------- VOC


def find_voc_root(path):
    """Resolves a `VOCdevkit/VOC2012` folder from it, the VOCdevkit folder or the folder above."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"The VOC folder '{path}' does not exist; pass the "
                                f"VOCdevkit/VOC2012 folder (or VOCdevkit, or its parent).")
    if not os.path.isdir(path):
        raise NotADirectoryError(f"The VOC path '{path}' is a file; pass the VOCdevkit/VOC2012 "
                                 f"folder (or VOCdevkit, or its parent).")
    markers = ("JPEGImages", "Annotations", "SegmentationClass", "ImageSets")
    for candidate in (path, os.path.join(path, "VOC2012"),
                      os.path.join(path, "VOCdevkit", "VOC2012")):
        if os.path.isdir(candidate) and any(
                os.path.isdir(os.path.join(candidate, m)) for m in markers):
            return candidate
    raise FileNotFoundError(f"The folder '{path}' is not a VOC folder: neither it, its VOC2012 "
                            f"nor its VOCdevkit/VOC2012 holds JPEGImages/Annotations/"
                            f"SegmentationClass.")


def parse_voc_annotation(path, include_difficult=True):
    """Sorted class indices (into `VOC_CLASSES`) of the objects of one VOC XML annotation.

    Only direct `<object>` children count (not the `<part>`s of person layouts). Tolerates float
    box coordinates and empty `<pose/>`, `<truncated/>` and `<difficult/>` (empty = 0).
    """
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as error:
        raise ValueError(f"The VOC annotation '{path}' is not readable XML ({error}).") from None
    present = set()
    for obj in root.findall("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in VOC_CLASSES:
            raise ValueError(f"The VOC annotation '{path}' names an unknown class {name!r} "
                             f"(expected one of the 20 VOC classes).")
        if not include_difficult and _flag(obj.findtext("difficult"), path):
            continue
        present.add(VOC_CLASSES.index(name))
    return sorted(present)


def _flag(text, path):
    text = (text or "").strip()
    if not text:
        return False
    try:
        return float(text) != 0
    except ValueError:
        raise ValueError(f"The VOC annotation '{path}' has a non-numeric difficult flag "
                         f"{text!r}.") from None


def _multi_hot(indices, num_classes):
    row = np.zeros(num_classes, np.float32)
    row[list(indices)] = 1.0
    return row


def _stems(folder, extensions):
    """stem -> file name for the files of `folder` with one of `extensions` (lower case)."""
    out = {}
    for name in os.listdir(folder):
        stem, ext = os.path.splitext(name)
        if not name.startswith(".") and ext.lower() in extensions:
            out.setdefault(stem, name)
    return out


def _read_id_list(path):
    with open(path, encoding="utf-8") as handle:
        # Main/<class>_train.txt style lines ("id  1") keep their first field.
        return [line.split()[0] for line in handle if line.strip()]


def _parse_voc(path, task, *, seed, split_mode, include_difficult, void_index, min_fraction,
               num_classes):
    root = find_voc_root(path)
    jpeg_dir = os.path.join(root, "JPEGImages")
    if not os.path.isdir(jpeg_dir):
        raise FileNotFoundError(f"The VOC folder '{root}' has no JPEGImages folder.")
    jpegs = _stems(jpeg_dir, (".jpg", ".jpeg"))
    image_paths_all = {stem: os.path.join(jpeg_dir, name) for stem, name in jpegs.items()}

    if task == "classification":
        _check_fixed_classes(num_classes, len(VOC_CLASSES), "VOC classification")
        ann_dir = os.path.join(root, "Annotations")
        if not os.path.isdir(ann_dir):
            raise FileNotFoundError(f"The VOC folder '{root}' has no Annotations folder, which "
                                    f"classification labels come from.")
        annotations = _stems(ann_dir, (".xml",))
        if split_mode == "official":
            lists = _official_lists(root, "Main")
            ids = sorted(set(lists["train"]) | set(lists["val"]))
            missing = [i for i in ids if i not in annotations or i not in jpegs]
            if missing:
                raise FileNotFoundError(f"{len(missing)} ids of {root}/ImageSets/Main lack an "
                                        f"annotation or JPEG, e.g. {missing[0]!r}.")
        else:
            ids = sorted(set(annotations) & set(jpegs))
        if not ids:
            raise ValueError(f"The VOC folder '{root}' has no annotation with a JPEG in "
                             f"JPEGImages.")
        labels = {i: _multi_hot(parse_voc_annotation(os.path.join(ann_dir, annotations[i]),
                                                     include_difficult), len(VOC_CLASSES))
                  for i in ids}
        class_names, mask_paths, file_void = list(VOC_CLASSES), {}, None
    else:
        _check_fixed_classes(num_classes, len(VOC_CLASSES) + 1, "VOC segmentation")
        seg_dir = os.path.join(root, "SegmentationClass")
        if not os.path.isdir(seg_dir):
            raise FileNotFoundError(f"The VOC folder '{root}' has no SegmentationClass folder, "
                                    f"which segmentation masks come from.")
        masks = _stems(seg_dir, (".png",))
        if split_mode == "official":
            lists = _official_lists(root, "Segmentation")
            ids = sorted(set(lists["train"]) | set(lists["val"]))
        else:
            ids = _voc_segmentation_ids(root, masks)
        paired = [i for i in ids if i in masks and i in jpegs]
        if len(paired) < len(ids):
            lost = [i for i in ids if i not in paired]
            if split_mode == "official":
                raise FileNotFoundError(f"{len(lost)} ids of {root}/ImageSets/Segmentation lack a "
                                        f"mask or JPEG, e.g. {lost[0]!r}.")
            _logger.warning("%d listed VOC segmentation ids lack a mask or JPEG and are left "
                            "out (e.g. %s).", len(lost), lost[0])
        ids = paired
        if not ids:
            raise ValueError(f"No image/mask pairs found in '{root}' (JPEGImages with "
                             f"SegmentationClass).")
        mask_paths = {i: os.path.join(seg_dir, masks[i]) for i in ids}
        file_void = VOC_VOID if void_index is None else int(void_index)
        class_names = ["background"] + list(VOC_CLASSES)
        if split_mode == "paper":
            labels, _ = scan_masks([mask_paths[i] for i in ids], file_void, len(class_names),
                                   min_fraction)
            labels = dict(zip(ids, labels))
        else:
            read_mask(mask_paths[ids[0]], file_void, len(class_names))  # fail early on RGB masks
            labels = {}

    if split_mode == "official":
        splits = {"train": list(lists["train"]), "val": list(lists["val"]),
                  "test": list(lists["val"])}
    else:
        splits = paper_split(ids, np.stack([labels[i] for i in ids]), PAPER_FRACTIONS, seed)
    image_paths = {i: image_paths_all[i] for i in ids}
    images.check_readable([image_paths[i] for i in ids])
    return LabelledSource(
        name="voc2012", num_classes=len(class_names), class_names=class_names,
        void_index=VOID if task == "segmentation" else None, splits=splits, task=task,
        kind="voc", image_paths=image_paths, mask_paths=mask_paths, labels=labels,
        file_void_index=file_void, split_mode=split_mode, root=root,
    )


def _official_lists(root, kind):
    folder = os.path.join(root, "ImageSets", kind)
    lists = {}
    for split in ("train", "val"):
        path = os.path.join(folder, f"{split}.txt")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"The official split list '{path}' does not exist; use "
                                    f"split_mode='paper' to re-split every labelled image.")
        lists[split] = _read_id_list(path)
        if not lists[split]:
            raise ValueError(f"The official split list '{path}' is empty.")
    return lists


def _voc_segmentation_ids(root, masks):
    """Ids of the VOC segmentation set: ImageSets/Segmentation lists, else every mask present."""
    folder = os.path.join(root, "ImageSets", "Segmentation")
    trainval = os.path.join(folder, "trainval.txt")
    if os.path.isfile(trainval):
        return sorted(set(_read_id_list(trainval)))
    parts = [os.path.join(folder, f"{s}.txt") for s in ("train", "val")]
    if all(os.path.isfile(p) for p in parts):
        return sorted(set(_read_id_list(parts[0])) | set(_read_id_list(parts[1])))
    return sorted(masks)


# ---------------------------------------------------------------------------- TFDS


def _parse_tfds_voc(*, seed, split_mode, include_difficult, num_classes, data_dir):
    import tensorflow_datasets as tfds  # slow import, only needed here

    _check_fixed_classes(num_classes, len(VOC_CLASSES), "VOC classification")
    builder = prepared_builder(_TFDS_VOC, data_dir, instead="--dataset voc:PATH/VOCdevkit")
    key = "labels" if include_difficult else "labels_no_difficult"
    counts = {}
    rows = []
    for split in ("train", "validation"):
        ds = builder.as_dataset(split=split, shuffle_files=False,
                                decoders={"image": tfds.decode.SkipDecoding()})
        ds = ds.map(lambda ex: ex[key], num_parallel_calls=AUTOTUNE)
        split_rows = [_multi_hot(np.asarray(x).tolist(), len(VOC_CLASSES))
                      for x in ds.as_numpy_iterator()]
        counts[split] = len(split_rows)
        rows += split_rows
    ids = list(range(len(rows)))  # index into "train+validation", in TFDS order
    labels = dict(zip(ids, rows))
    if split_mode == "official":
        n_train = counts["train"]
        splits = {"train": ids[:n_train], "val": ids[n_train:], "test": ids[n_train:]}
    else:
        splits = paper_split(ids, np.stack(rows), PAPER_FRACTIONS, seed)
    return LabelledSource(
        name="tfds-voc2012", num_classes=len(VOC_CLASSES), class_names=list(VOC_CLASSES),
        void_index=None, splits=splits, task="classification", kind="tfds", labels=labels,
        split_mode=split_mode, tfds_data_dir=data_dir,
    )


# ---------------------------------------------------------------------------- folders


def _pair_folder(images_dir, masks_dir):
    """[(image path, mask path)] of an images and a masks folder, paired by file stem."""
    for folder, what in ((images_dir, "images"), (masks_dir, "masks")):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"The {what} folder '{folder}' does not exist (or is not a "
                                    f"folder).")
    def by_stem(folder):
        out = {}
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith(".") or not name.lower().endswith(images.IMAGE_EXTENSIONS):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), folder)
                out.setdefault(os.path.splitext(rel)[0], os.path.join(dirpath, name))
        return out

    image_files, mask_files = by_stem(images_dir), by_stem(masks_dir)
    pairs = [(image_files[s], mask_files[s]) for s in sorted(image_files) if s in mask_files]
    if not pairs:
        raise ValueError(f"No image/mask pairs found in '{images_dir}' and '{masks_dir}' "
                         f"(files are paired by name without extension).")
    unpaired = len(image_files) - len(pairs)
    if unpaired:
        _logger.warning("%d images in '%s' have no mask in '%s' and are left out.", unpaired,
                        images_dir, masks_dir)
    return pairs


def _folder_groups(rest):
    """{"train": (images, masks), ...} of a seg-folder spec (after 'seg-folder:')."""
    parts = [p.strip() for p in rest.split(";")]
    pairs = []
    for part in parts:
        dirs = [os.path.expanduser(d.strip()) for d in part.split(",")]
        if len(dirs) != 2 or not all(dirs):
            if len(parts) == 1 and len(dirs) == 1 and dirs[0]:
                return _layout_groups(dirs[0])
            raise ValueError(f"A seg-folder part must be 'IMAGES,MASKS', received {part!r} in "
                             f"'seg-folder:{rest}'.")
        pairs.append(tuple(dirs))
    if len(pairs) > 3:
        raise ValueError(f"seg-folder takes at most train;val;test folder pairs, received "
                         f"'seg-folder:{rest}'.")
    return dict(zip(SPLITS, pairs))


def _layout_groups(root):
    """ROOT with train/trainannot[, val/valannot[, test/testannot]] (the SegNet CamVid layout)."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"The folder '{root}' does not exist (or is not a folder).")
    groups = {}
    for split in SPLITS:
        pair = (os.path.join(root, split), os.path.join(root, split + "annot"))
        if os.path.isdir(pair[0]) and os.path.isdir(pair[1]):
            groups[split] = pair
    if "train" not in groups:
        raise ValueError(f"'seg-folder:{root}' needs IMAGES,MASKS, or a folder holding "
                         f"train/ and trainannot/ (and optionally val/, valannot/).")
    return groups


def _parse_folder(rest, task, *, seed, split_mode, void_index, min_fraction, num_classes):
    groups = _folder_groups(rest)
    group_pairs = {split: _pair_folder(*dirs) for split, dirs in groups.items()}
    all_pairs = [pair for pairs in group_pairs.values() for pair in pairs]
    items = [image for image, _ in all_pairs]
    if len(set(items)) != len(items):
        raise ValueError(f"The same image is listed twice in 'seg-folder:{rest}'.")
    mask_paths = {image: mask for image, mask in all_pairs}
    presence, counts = scan_masks([mask for _, mask in all_pairs], void_index, num_classes,
                                  min_fraction)
    if num_classes is None:  # the largest non-void value + 1: exactly the width of counts
        if not counts.any():
            raise ValueError(f"Every mask of 'seg-folder:{rest}' is void (value {void_index}).")
        num_classes = counts.shape[1]
    labels = dict(zip(items, presence))
    if split_mode == "official" and "val" in group_pairs:
        splits = {"train": [image for image, _ in group_pairs["train"]]}
        val = [image for image, _ in group_pairs["val"]]
        if "test" in group_pairs:
            splits["val"] = val
            splits["test"] = [image for image, _ in group_pairs["test"]]
        else:
            val_test = stratified_split(val, np.stack([labels[i] for i in val]),
                                        _split_sizes(len(val), (2 / 3, 1 / 3)), seed)
            splits["val"], splits["test"] = val_test
    else:
        splits = paper_split(items, np.stack([labels[i] for i in items]), PAPER_FRACTIONS, seed)
    images.check_readable(items)
    folders = [os.path.abspath(d) for dirs in groups.values() for d in dirs]
    name = os.path.basename(os.path.commonpath(folders)) or "seg-folder"
    class_names = [f"class_{c}" for c in range(num_classes)]
    return LabelledSource(
        name=name, num_classes=num_classes, class_names=class_names,
        void_index=VOID if task == "segmentation" else None, splits=splits, task=task,
        kind="folder", image_paths={i: i for i in items}, mask_paths=mask_paths, labels=labels,
        file_void_index=void_index, split_mode=split_mode, root=rest,
    )


# ----------------------------------------------------------------------------------------------
# Masks
# ----------------------------------------------------------------------------------------------


def read_mask(path, void_index=VOC_VOID, num_classes=None):
    """Reads one mask file as stored class indices (int32 [H, W]), void mapped to `VOID`.

    Palette ('P') PNGs give their indices, never colours; greyscale and 16-bit masks their
    values. An RGB mask whose three channels are equal is read as one channel; any other RGB
    mask is refused. With `num_classes`, values that are neither a class nor void become `VOID`.
    A stored 255 is void too, whatever `void_index`.
    """
    from PIL import Image  # Pillow is a dependency of matplotlib

    path = path.decode() if isinstance(path, bytes) else os.fspath(path)
    with Image.open(path) as image:
        if image.mode == "1":
            image = image.convert("L")
        mask = np.asarray(image)
    if mask.ndim == 3:
        if mask.shape[-1] >= 3 and np.array_equal(mask[..., 0], mask[..., 1]) \
                and np.array_equal(mask[..., 0], mask[..., 2]):
            mask = mask[..., 0]
        else:
            raise ValueError(f"The mask '{path}' is a colour image; masks must store class "
                             f"indices (a palette or greyscale PNG).")
    mask = mask.astype(np.int32)
    out = np.where(mask == void_index, VOID, mask)
    if num_classes is not None:
        out = np.where((out >= num_classes) | (out < 0), VOID, out)
    return out.astype(np.int32)


def _mask_counts(path, void_index, num_classes):
    mask = read_mask(path, void_index)
    values = mask[mask != VOID]
    if num_classes is not None and values.size and values.max() >= num_classes:
        bad = int(values[values >= num_classes][0])
        raise ValueError(f"The mask '{path}' holds the value {bad}, which is neither a class "
                         f"(0..{num_classes - 1}) nor void ({void_index}); pass the right "
                         f"num_classes/void_index.")
    return np.bincount(values.ravel(), minlength=num_classes or 0)


def scan_masks(paths, void_index, num_classes, min_fraction=0.01):
    """Reads every mask once: image-level labels and pixel counts.

    Returns:
        `(presence, counts)`: float32 [n, C] with 1 where class c covers >= `min_fraction` of the
        mask's non-void pixels, and int64 [n, C] pixel counts. With `num_classes=None`, C is the
        largest value seen + 1.
    """
    with concurrent.futures.ThreadPoolExecutor(_MASK_READ_THREADS) as pool:
        rows = list(pool.map(lambda p: _mask_counts(p, void_index, num_classes), paths))
    width = num_classes or max((len(r) for r in rows), default=0)
    counts = np.zeros([len(rows), width], np.int64)
    for i, row in enumerate(rows):
        counts[i, :len(row)] = row
    return labels_from_counts(counts, min_fraction), counts


def labels_from_counts(counts, min_fraction=0.01):
    """float32 multi-hot [n, C]: class c present where it covers >= min_fraction of the pixels."""
    counts = np.asarray(counts, np.float64)
    total = counts.sum(-1, keepdims=True)
    fraction = counts / np.maximum(total, 1.0)
    return ((counts > 0) & (fraction >= min_fraction)).astype(np.float32)


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


# ----------------------------------------------------------------------------------------------
# Splits
# ----------------------------------------------------------------------------------------------


def _split_sizes(n, fractions):
    """Split sizes summing to n (see module docs: successive ceil of the held-out parts)."""
    fractions = [float(f) for f in fractions]
    if not fractions or any(not f > 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be positive and sum to 1, received {fractions!r}.")
    if n in PAPER_SPLIT_SIZES and len(fractions) == 3 and np.allclose(fractions, PAPER_FRACTIONS):
        return list(PAPER_SPLIT_SIZES[n])
    sizes, rest = [], n
    for j in range(len(fractions) - 1):
        held = sum(fractions[j + 1:]) / sum(fractions[j:])
        held_out = math.ceil(round(rest * held, 9))
        sizes.append(rest - held_out)
        rest = held_out
    sizes.append(rest)
    k = len(sizes)
    while n >= k and min(sizes) == 0:  # at least one item per split when there are enough
        sizes[int(np.argmax(sizes))] -= 1
        sizes[sizes.index(0)] += 1
    return sizes


def stratified_split(ids, label_matrix, sizes, seed=0):
    """Iterative stratification for multi-label data (Sechidis et al. 2011) with exact sizes.

    Labels are taken rarest first; each example holding the current label goes to the subset
    that still wants the most examples of it (ties: the subset with the most free places, then
    seeded random), among subsets with free places, so the sizes come out exactly. Examples
    with no label fill the remaining places. Then `_refine_by_swaps` polishes the frequent
    labels by swapping examples between subsets (deterministic given the seed).

    Returns:
        A list of lists of ids, one per size, each in the order of `ids`.
    """
    ids = list(ids)
    y = np.asarray(label_matrix) > 0
    n = len(ids)
    if y.ndim != 2 or y.shape[0] != n:
        raise ValueError(f"label_matrix must be [len(ids), C], received shape "
                         f"{np.shape(label_matrix)} for {n} ids.")
    sizes = [int(s) for s in sizes]
    if sum(sizes) != n or min(sizes, default=0) < 0:
        raise ValueError(f"sizes must be >= 0 and sum to {n}, received {sizes!r}.")
    rng = np.random.default_rng(seed)
    capacity = np.array(sizes, np.float64)
    ratios = capacity / max(n, 1)
    wanted = np.outer(y.sum(0), ratios)  # [C, k] examples of each label each subset still wants
    subset = np.full(n, -1)
    unassigned = np.ones(n, bool)

    def place(scores):
        free = np.flatnonzero(capacity > 0)
        best = free[scores[free] == scores[free].max()]
        if len(best) > 1:
            best = best[capacity[best] == capacity[best].max()]
        return int(best[rng.integers(len(best))]) if len(best) > 1 else int(best[0])

    while True:
        remaining = y[unassigned].sum(0)
        if not remaining.any():
            break
        present = np.flatnonzero(remaining)
        rarest = present[remaining[present] == remaining[present].min()]
        label = rarest[rng.integers(len(rarest))]
        rows = np.flatnonzero(unassigned & y[:, label])
        for row in rng.permutation(rows):
            j = place(wanted[label])
            subset[row] = j
            unassigned[row] = False
            capacity[j] -= 1
            wanted[y[row], j] -= 1
    for row in rng.permutation(np.flatnonzero(unassigned)):
        j = place(np.zeros(len(sizes)))
        subset[row] = j
        capacity[j] -= 1
    _refine_by_swaps(y, subset, sizes, rng)
    return [[ids[i] for i in np.flatnonzero(subset == j)] for j in range(len(sizes))]


def _refine_by_swaps(y, subset, sizes, rng, rounds=None, candidates=256):
    """Polishes a split in place by swapping examples between subsets (sizes stay exact).

    The greedy stratifier balances rare labels well but the most frequent ones last, when most
    examples are placed. Each round takes a random example of one subset and the best of up to
    `candidates` random examples of another, and swaps them when that lowers
    sum_j sum_c (count_jc - size_j * p_c)^2 / size_j, the size-weighted squared deviation of each
    subset's class frequencies from the overall ones.
    """
    k, n = len(sizes), len(subset)
    if k < 2 or n < 2 or not y.shape[1]:
        return
    y = y.astype(np.float64)
    members = [np.flatnonzero(subset == j) for j in range(k)]
    sizes = np.array([len(m) for m in members], np.float64)
    if (sizes == 0).sum() > k - 2:
        return
    counts = np.stack([y[m].sum(0) for m in members])
    error = counts - sizes[:, None] * y.mean(0)
    rounds = min(4 * n, 20_000) if rounds is None else rounds
    nonempty = np.flatnonzero(sizes)
    for _ in range(rounds):
        i, j = nonempty[rng.permutation(len(nonempty))[:2]]
        ai = rng.integers(len(members[i]))
        a = members[i][ai]
        bj = rng.integers(len(members[j]), size=min(candidates, len(members[j])))
        d = y[members[j][bj]] - y[a]  # swapping a (i -> j) with b (j -> i) adds d to i
        old = (error[i] @ error[i]) / sizes[i] + (error[j] @ error[j]) / sizes[j]
        new = (((error[i] + d) ** 2).sum(1) / sizes[i]
               + ((error[j] - d) ** 2).sum(1) / sizes[j])
        best = int(np.argmin(new))
        if new[best] < old - 1e-9:
            b = members[j][bj[best]]
            error[i] += d[best]
            error[j] -= d[best]
            members[i][ai], members[j][bj[best]] = b, a
            subset[a], subset[b] = j, i


def paper_split(ids, label_matrix, fractions=PAPER_FRACTIONS, seed=0):
    """The paper's re-split of all labelled images: stratified 70/20/10 (see module docs).

    Args:
        ids: Items (any hashable values), one per row of `label_matrix`.
        label_matrix: [n, C] multi-hot labels (anything > 0 counts as present).
        fractions: (train, val, test) fractions, positive, summing to 1.
        seed: Seed of the stratifier; the same inputs and seed give the same split.

    Returns:
        dict(train=..., val=..., test=...): disjoint lists covering `ids`, each in `ids` order.
        For n = 17,125 the sizes are 11,987 / 3,425 / 1,713; for n = 2,913, 2,039 / 577 / 297.
    """
    if len(fractions) != 3:
        raise ValueError(f"fractions must be (train, val, test), received {fractions!r}.")
    ids = list(ids)
    parts = stratified_split(ids, label_matrix, _split_sizes(len(ids), fractions), seed)
    return dict(zip(SPLITS, parts))


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


def _synthetic_scenes(source, split, image_size, seed, training, size):
    n = source.split_size(split, size)
    start = SYNTHETIC_STARTS[split]
    indices = tf.data.Dataset.range(start, start + n, output_type=tf.int64)
    if training:
        indices = indices.shuffle(max(n, 1), seed=seed, reshuffle_each_iteration=True)

    def render(batch_indices):
        return synthetic.render_scenes(batch_indices, seed=SYNTHETIC_DOWNSTREAM_SEED,
                                       image_size=image_size,
                                       num_classes=source.synthetic_classes)

    # Scene i depends on (seed, i) only, whatever batch it is rendered in.
    return indices.batch(64).map(render, num_parallel_calls=AUTOTUNE).unbatch()


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
        scenes = _synthetic_scenes(source, split, image_size, seed, training, size)
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
        ds = _tfds_images(source, items, labels)
        decode = _decode_jpeg_bytes
    else:
        paths = [source.image_paths[item] for item in items]
        ds = tf.data.Dataset.from_tensor_slices((tf.constant(paths, tf.string), labels))
        decode = images.load_rgb
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


def _tfds_images(source, items, labels):
    """(encoded image, labels) of the TFDS records `items` (indices into train+validation)."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(_TFDS_VOC, data_dir=source.tfds_data_dir)
    ds = builder.as_dataset(split=_TFDS_POOL, shuffle_files=False,
                            decoders={"image": tfds.decode.SkipDecoding()})
    total = len(source.labels)
    member = np.zeros(total, bool)
    member[np.asarray(items, np.int64)] = True
    row = np.full(total, -1, np.int64)
    row[np.asarray(items, np.int64)] = np.arange(len(items))
    member_t, row_t, labels_t = tf.constant(member), tf.constant(row), tf.constant(labels)
    ds = ds.enumerate().filter(lambda i, ex: tf.gather(member_t, i))
    return ds.map(lambda i, ex: (ex["image"], tf.gather(labels_t, tf.gather(row_t, i))))


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
        scenes = _synthetic_scenes(source, split, image_size, seed, training, size)
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
        rgb = images.load_rgb(image_path)
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
