"""Which photo files a run reads: a folder listed, a list split into training and held-out parts.

`list_images` finds the photos under a folder and `split_paths` splits a list of them with a seeded
permutation; `check_paths` and `check_int` check the arguments every reader of such a list takes.
"""

import numbers
import os

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


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
    paths = sorted(set(check_paths(paths, "split_paths")))
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


def check_paths(paths, caller):
    """Returns `paths` as a list of str paths; raises ValueError on a single path or an empty list."""
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


def check_int(value, name, minimum=None):
    """Returns `value` as an int; raises ValueError when it is not an integer or is below `minimum`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, received {value!r}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, received {value!r}.")
    return int(value)
