"""What a `--dataset` value resolves to (`LabelledSource`) and the options that resolve it.

The source modules (`data.labelled.voc`, `data.labelled.folders`, `data.labelled.synthetic`,
`data.tinyimagenet`) each build a `LabelledSource`; `data.labelled.parse_labelled` picks one by the
spec's prefix and streams it.
"""

import dataclasses

import numpy as np

from data.labelled.splits import DEFAULT_TEST_SEQUENCE, SPLITS

SYNTHETIC_SPLIT_SIZES = {"train": 2048, "val": 512, "test": 512}  # default synthetic set sizes


@dataclasses.dataclass(frozen=True)
class ParseOptions:
    """The options of `parse_labelled` every source parser receives (see its Args)."""

    seed: int = 0
    split_mode: str = "paper"
    include_difficult: bool = True
    void_index: int | None = None
    min_fraction: float = 0.01
    num_classes: int | None = None
    synthetic_classes: int = 6
    tfds_data_dir: str | None = None
    verbose: bool = True
    test_sequence: str = DEFAULT_TEST_SEQUENCE
    val_sequence: str | None = None


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
        split_mode: "paper", "official" or "sequence"; "fixed" for a source whose splits no mode
            changes (Tiny ImageNet).
        synthetic_classes: K of the synthetic scenes.
        tfds_data_dir: TFDS data folder of a "tfds" source.
        root: The resolved folder(s) the data came from.
        single_label: True when every item has exactly one class, so its labels are one-hot
            (Tiny ImageNet): a softmax / top-1 task rather than VOC's multi-label one.
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
    single_label: bool = False

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


def _check_fixed_classes(num_classes, expected, what):
    if num_classes is not None and num_classes != expected:
        raise ValueError(f"{what} has {expected} classes, received num_classes={num_classes!r}.")
