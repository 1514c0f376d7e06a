"""Tiny ImageNet read from its own layout (`tinyimagenet:PATH`, PATH the unpacked `tiny-imagenet-200/`
folder), as colorization pretext photos (`pretext_paths`) and as a single-label classification set
(`parse_tinyimagenet`).

The layout:
  wnids.txt                              the class list: one WordNet id per line, in file order
  words.txt                              optional: `wnid<TAB>names`; the first name is the class name
  train/<wnid>/images/<wnid>_<i>.JPEG    the photos of a class, ordered by the integer i
  val/images/val_<k>.JPEG                the held-out photos ...
  val/val_annotations.txt                ... with their classes: `file<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1`

The class list always comes from wnids.txt (copies with other than the official 200 classes exist).
Labelled splits are fixed, whatever `split_mode`: "test" is every annotated val photo, "val" the last
`TINY_VAL_PER_CLASS` train photos of each class, "train" the rest, ordered so that any prefix is
class-balanced (a seeded permutation within each class, then round-robin over the classes), because
label-fraction runs train on a prefix of it.
"""

import collections
import os
import re

import numpy as np

from data.decode import check_readable
from data.files import IMAGE_EXTENSIONS
from data.labelled.source import LabelledSource, _check_fixed_classes

TINY_VAL_PER_CLASS = 10  # train photos of each class held out as the labelled "val" split

_LAYOUT_HINT = "pass the unpacked tiny-imagenet-200 folder (the one holding wnids.txt, train/ and val/)"


def read_wnids(root):
    """The class ids of wnids.txt, in file order (blank lines skipped, a missing last newline is fine)."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"The Tiny ImageNet folder '{root}' does not exist (or is not a folder); "
                                f"{_LAYOUT_HINT}.")
    path = os.path.join(root, "wnids.txt")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"The Tiny ImageNet folder '{root}' has no wnids.txt; {_LAYOUT_HINT}.")
    with open(path, encoding="utf-8") as f:
        wnids = [line.strip() for line in f if line.strip()]
    if not wnids:
        raise ValueError(f"The class list '{path}' is empty; it should hold one WordNet id per line.")
    repeated = [wnid for wnid, count in collections.Counter(wnids).items() if count > 1]
    if repeated:
        raise ValueError(f"The class list '{path}' names the class {repeated[0]!r} more than once.")
    return wnids


def read_class_names(root, wnids):
    """The first name of each class in words.txt, or its wnid when words.txt lacks it (or is absent)."""
    path = os.path.join(os.fspath(root), "words.txt")
    names = {}
    if os.path.isfile(path):
        wanted = set(wnids)
        with open(path, encoding="utf-8") as f:
            for line in f:
                wnid, _, words = line.rstrip("\r\n").partition("\t")
                first = words.split(",")[0].strip()
                if wnid in wanted and first:
                    names.setdefault(wnid, first)
    return [names.get(wnid, wnid) for wnid in wnids]


def _index(folder, name, prefix):
    """The integer i of a photo named `<prefix><i>.<ext>`; a one-sentence error for any other name."""
    match = re.fullmatch(rf"{re.escape(prefix)}(\d+)", os.path.splitext(name)[0])
    if match is None:
        raise ValueError(f"The photo '{os.path.join(folder, name)}' is not named {prefix}<i> (an integer index), "
                         f"so it has no place in the Tiny ImageNet order; rename or remove it.")
    return int(match.group(1))


def _indexed_photos(folder, prefix):
    """The photos `<prefix><i>.<ext>` of `folder`, ordered by the integer i (hidden files skipped)."""
    names = [name for name in os.listdir(folder)
             if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)]
    return [os.path.join(folder, name) for name in sorted(names, key=lambda n: (_index(folder, n, prefix), n))]


def train_photos(root, wnids):
    """{wnid: the paths of train/<wnid>/images/<wnid>_<i>.JPEG ordered by i}, for every class of `wnids`."""
    photos = {}
    for wnid in wnids:
        folder = os.path.join(os.fspath(root), "train", wnid, "images")
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"The Tiny ImageNet class folder '{folder}' does not exist, but wnids.txt "
                                    f"lists {wnid}; {_LAYOUT_HINT}.")
        photos[wnid] = _indexed_photos(folder, f"{wnid}_")
        if not photos[wnid]:
            raise ValueError(f"The Tiny ImageNet class folder '{folder}' holds no images ({wnid}_<i>.JPEG).")
    return photos


def val_photos(root):
    """The paths of val/images/val_<k>.JPEG, ordered by k."""
    folder = os.path.join(os.fspath(root), "val", "images")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"The Tiny ImageNet val folder '{folder}' does not exist; {_LAYOUT_HINT}.")
    paths = _indexed_photos(folder, "val_")
    if not paths:
        raise ValueError(f"The Tiny ImageNet val folder '{folder}' holds no images (val_<k>.JPEG).")
    return paths


def val_labels(root, wnids):
    """[(path, class index into `wnids`)] of val/val_annotations.txt, ordered by the k of val_<k>."""
    folder = os.path.join(os.fspath(root), "val")
    path = os.path.join(folder, "val_annotations.txt")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"The Tiny ImageNet folder '{root}' has no val/val_annotations.txt, which the "
                                f"labels of its val photos come from.")
    index = {wnid: c for c, wnid in enumerate(wnids)}
    labels = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.strip().split("\t")
            if fields == [""]:
                continue
            if len(fields) < 2:
                raise ValueError(f"Line {number} of '{path}' is not 'file<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1', "
                                 f"received {line.strip()!r}.")
            name, wnid = fields[0], fields[1]
            if wnid not in index:
                raise ValueError(f"Line {number} of '{path}' labels {name} with {wnid!r}, which is not a class "
                                 f"of {os.path.join(root, 'wnids.txt')}.")
            photo = os.path.join(folder, "images", name)
            if not os.path.isfile(photo):
                raise FileNotFoundError(f"The photo '{photo}' annotated on line {number} of '{path}' does not "
                                        f"exist.")
            labels[name] = index[wnid]
    if not labels:
        raise ValueError(f"The annotation file '{path}' lists no photos.")
    images_dir = os.path.join(folder, "images")
    return [(os.path.join(images_dir, name), labels[name])
            for name in sorted(labels, key=lambda n: (_index(images_dir, n, "val_"), n))]


def _check_max_photos(max_photos_per_class):
    value = 0 if max_photos_per_class is None else max_photos_per_class
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"max_photos_per_class must be None or an int >= 0 (0 or None: every photo), "
                         f"received {max_photos_per_class!r}.")
    return int(value)


def pretext_paths(root, max_photos_per_class=0):
    """(train, held-out) photo paths for the colorization pretext; the labels are not read.

    Train: the first `max_photos_per_class` photos of each class by index (0 or None: all), so the
    subset for a smaller value is always contained in the one for a larger value. Held out: every val
    photo. Both are sorted as strings, as a folder source's are (the pipeline shuffles them by seed).
    """
    limit = _check_max_photos(max_photos_per_class)
    root = os.path.expanduser(os.fspath(root))
    by_class = train_photos(root, read_wnids(root))
    train = sorted(p for photos in by_class.values() for p in (photos[:limit] if limit else photos))
    return train, sorted(val_photos(root))


def _round_robin(per_class):
    """One item of each class in turn (classes in order), until every class is used up."""
    longest = max(len(items) for items in per_class)
    return [items[r] for r in range(longest) for items in per_class if r < len(items)]


def parse_tinyimagenet(rest, task, options):
    """The Tiny ImageNet source of `tinyimagenet:PATH` (`rest` is PATH), classification only.

    Items are photo paths with one-hot float32 labels (`single_label`); the splits are fixed (see the
    module docs): `options.split_mode` does not change them, and `options.seed` orders the train split.
    """
    root = os.path.expanduser(rest)
    if task != "classification":
        raise ValueError(f"Tiny ImageNet has class labels but no segmentation masks, so 'tinyimagenet:{rest}' "
                         f"serves task 'classification' only, received task {task!r}.")
    wnids = read_wnids(root)
    _check_fixed_classes(options.num_classes, len(wnids), f"Tiny ImageNet at '{root}'")
    by_class = train_photos(root, wnids)
    for wnid, photos in by_class.items():
        if len(photos) <= TINY_VAL_PER_CLASS:
            raise ValueError(f"The Tiny ImageNet class folder '{os.path.dirname(photos[0])}' holds {len(photos)} "
                             f"photos, but {TINY_VAL_PER_CLASS} are held out for val and some must remain to train.")
    one_hot = np.eye(len(wnids), dtype=np.float32)
    one_hot.setflags(write=False)  # every item's label is a row of this one matrix
    train, val, labels = [], [], {}
    for c, wnid in enumerate(wnids):
        kept = by_class[wnid][:-TINY_VAL_PER_CLASS]
        order = np.random.default_rng([options.seed, c]).permutation(len(kept))
        train.append([kept[i] for i in order])
        val.append(by_class[wnid][-TINY_VAL_PER_CLASS:])
        labels.update((photo, one_hot[c]) for photo in by_class[wnid])
    test = val_labels(root, wnids)
    labels.update((photo, one_hot[c]) for photo, c in test)
    splits = {"train": _round_robin(train), "val": _round_robin(val), "test": [photo for photo, _ in test]}
    check_readable(splits["train"])
    return LabelledSource(
        name="tinyimagenet", num_classes=len(wnids), class_names=read_class_names(root, wnids), void_index=None,
        splits=splits, task=task, kind="folder", image_paths={p: p for p in labels}, labels=labels,
        split_mode="fixed", root=root, single_label=True,
    )
