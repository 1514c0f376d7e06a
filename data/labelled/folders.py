"""Folder sets as a labelled source: `seg-folder:IMAGES,MASKS`, `seg-folder:TI,TM;VI,VM[;...]`
or `seg-folder:ROOT` (ROOT holding train/trainannot[, val/valannot[, test/testannot]], the SegNet
CamVid layout).

Images and masks are paired by file name without extension (searched recursively). Image-level
labels come from the masks (`data.labelled.masks.scan_masks`), which are checked for stray values at
start-up. A set with separate train and val folders keeps them under `split_mode="official"`,
and its val folder is split 2:1 (stratified) into val and test (a test folder, when present, is
the test split instead); with `split_mode="paper"` the folders are pooled and re-split 70/20/10,
and a set without a val folder is always re-split. With `split_mode="sequence"` the folders are
pooled and split by video sequence, the file name's prefix up to its first `_`
(`data.labelled.splits.sequence_split`).
"""

import logging
import os

import numpy as np

from data.decode import check_readable
from data.files import IMAGE_EXTENSIONS
from data.labelled.source import LabelledSource
from data.labelled.masks import VOID, scan_masks
from data.labelled.splits import (PAPER_FRACTIONS, SPLITS, _split_sizes, paper_split,
                                  sequence_split, stratified_split)

_logger = logging.getLogger(__name__)


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
                if name.startswith(".") or not name.lower().endswith(IMAGE_EXTENSIONS):
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


def parse_folder(rest, task, options):
    """The folder source of `seg-folder:REST` (see the module docs for the forms of REST)."""
    seed, split_mode, num_classes = options.seed, options.split_mode, options.num_classes
    void_index = VOID if options.void_index is None else int(options.void_index)
    groups = _folder_groups(rest)
    group_pairs = {split: _pair_folder(*dirs) for split, dirs in groups.items()}
    all_pairs = [pair for pairs in group_pairs.values() for pair in pairs]
    items = [image for image, _ in all_pairs]
    if len(set(items)) != len(items):
        raise ValueError(f"The same image is listed twice in 'seg-folder:{rest}'.")
    mask_paths = {image: mask for image, mask in all_pairs}
    splits = None
    if split_mode == "sequence":  # needs no labels: a name without a sequence stops before the scan
        splits = sequence_split(items, options.test_sequence, options.val_sequence,
                                what=f"'seg-folder:{rest}'")
    presence, counts = scan_masks([mask for _, mask in all_pairs], void_index, num_classes,
                                  options.min_fraction, options.verbose)
    if num_classes is None:  # the largest non-void value + 1: exactly the width of counts
        if not counts.any():
            raise ValueError(f"Every mask of 'seg-folder:{rest}' is void (value {void_index}).")
        num_classes = counts.shape[1]
    labels = dict(zip(items, presence))
    if splits is None and split_mode == "official" and "val" in group_pairs:
        splits = {"train": [image for image, _ in group_pairs["train"]]}
        val = [image for image, _ in group_pairs["val"]]
        if "test" in group_pairs:
            splits["val"] = val
            splits["test"] = [image for image, _ in group_pairs["test"]]
        else:
            val_test = stratified_split(val, np.stack([labels[i] for i in val]),
                                        _split_sizes(len(val), (2 / 3, 1 / 3)), seed)
            splits["val"], splits["test"] = val_test
    elif splits is None:
        splits = paper_split(items, np.stack([labels[i] for i in items]), PAPER_FRACTIONS, seed)
    check_readable(items)
    folders = [os.path.abspath(d) for dirs in groups.values() for d in dirs]
    name = os.path.basename(os.path.commonpath(folders)) or "seg-folder"
    class_names = [f"class_{c}" for c in range(num_classes)]
    return LabelledSource(
        name=name, num_classes=num_classes, class_names=class_names,
        void_index=VOID if task == "segmentation" else None, splits=splits, task=task,
        kind="folder", image_paths={i: i for i in items}, mask_paths=mask_paths, labels=labels,
        file_void_index=void_index, split_mode=split_mode, root=rest,
    )
