"""Pascal VOC 2012 as a labelled source: a `VOCdevkit/VOC2012` folder (`voc:PATH`) or TFDS
`voc/2012` (`tfds:voc/2012`, classification only: it has no masks).

Classification labels come from the `Annotations/*.xml` object lists (20 classes), segmentation
masks from `SegmentationClass/*.png` (21 classes, background = 0, void 255 = `VOID`). Official
splits are `ImageSets/Main/{train,val}.txt` (classification) or
`ImageSets/Segmentation/{train,val}.txt`; the VOC test labels are not public and prior work
reports on val, so `test` is the val list. Reading the ~17k annotations shows a progress bar.
"""

import logging
import os
import xml.etree.ElementTree as ET

import numpy as np
import tensorflow as tf

from data.decode import check_readable
from data.labelled.source import LabelledSource, _check_fixed_classes
from data.labelled.masks import VOID, read_mask, scan_masks
from data.progress import with_progress
from data.labelled.splits import PAPER_FRACTIONS, paper_split
from data.tfds_sources import prepared_builder

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)
VOC_VOID = VOID  # VOC's masks store void as 255, the package's one void value

_TFDS_VOC = "voc/2012"
_TFDS_POOL = "train+validation"

_logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- VOC folder


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


def parse_voc(rest, task, options):
    """The VOC folder source of `voc:PATH` (`rest` is PATH; see `parse_labelled`)."""
    seed, split_mode, num_classes = options.seed, options.split_mode, options.num_classes
    root = find_voc_root(os.path.expanduser(rest))
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
                                                     options.include_difficult), len(VOC_CLASSES))
                  for i in with_progress(ids, len(ids), "VOC annotations", options.verbose)}
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
        file_void = VOC_VOID if options.void_index is None else int(options.void_index)
        class_names = ["background"] + list(VOC_CLASSES)
        if split_mode == "paper":
            labels, _ = scan_masks([mask_paths[i] for i in ids], file_void, len(class_names),
                                   options.min_fraction, options.verbose)
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
    check_readable([image_paths[i] for i in ids])
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


def parse_tfds_voc(rest, task, options):
    """The TFDS source of `tfds:voc/2012` (`rest` is "voc/2012"), classification only."""
    spec = f"tfds:{rest}"
    if rest != _TFDS_VOC:
        raise ValueError(f"Only 'tfds:{_TFDS_VOC}' is a labelled TFDS source, received "
                         f"{spec!r}.")
    if task != "classification":
        raise ValueError(f"TFDS {_TFDS_VOC} has no segmentation masks, so {spec!r} serves "
                         f"only classification; pass --dataset voc:PATH/VOCdevkit for "
                         f"segmentation.")
    import tensorflow_datasets as tfds  # slow import, only needed here

    seed, split_mode, num_classes = options.seed, options.split_mode, options.num_classes
    data_dir = options.tfds_data_dir
    _check_fixed_classes(num_classes, len(VOC_CLASSES), "VOC classification")
    builder = prepared_builder(_TFDS_VOC, data_dir, instead="--dataset voc:PATH/VOCdevkit")
    key = "labels" if options.include_difficult else "labels_no_difficult"
    counts = {}
    rows = []
    for split in ("train", "validation"):
        ds = builder.as_dataset(split=split, shuffle_files=False,
                                decoders={"image": tfds.decode.SkipDecoding()})
        ds = ds.map(lambda ex: ex[key], num_parallel_calls=tf.data.AUTOTUNE)
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


def tfds_voc_images(source, items, labels):
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
