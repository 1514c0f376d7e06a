"""Segmentation masks: the one void value, reading mask files, and scanning them for labels.

* **Void.** Masks are yielded with ONE void value for every source, `VOID = 255`, whatever the
  value in the files (CamVid's 11 becomes 255). Mask values that are neither a class (0..C-1)
  nor the file's void value are an error at start-up when the masks are scanned (`scan_masks`),
  and are mapped to void while streaming (`read_mask` with `num_classes`).
* **Masks** are read with PIL as stored indices (`np.asarray(Image.open(p))`): a palette ('P')
  PNG gives its palette indices, never colours mapped back to classes; an RGB mask is refused.
"""

import concurrent.futures
import os

import numpy as np

from data.progress import with_progress

VOID = 255  # the one void value of every yielded mask, in every module of the package
_MASK_READ_THREADS = 8


def read_mask(path, void_index=VOID, num_classes=None):
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


def scan_masks(paths, void_index, num_classes, min_fraction=0.01, verbose=True):
    """Reads every mask once: image-level labels and pixel counts.

    `verbose` shows a progress bar when there are many masks (see `data.progress`).

    Returns:
        `(presence, counts)`: float32 [n, C] with 1 where class c covers >= `min_fraction` of the
        mask's non-void pixels, and int64 [n, C] pixel counts. With `num_classes=None`, C is the
        largest value seen + 1.
    """
    paths = list(paths)
    with concurrent.futures.ThreadPoolExecutor(_MASK_READ_THREADS) as pool:
        rows = pool.map(lambda p: _mask_counts(p, void_index, num_classes), paths)
        rows = list(with_progress(rows, len(paths), "masks", verbose))
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
