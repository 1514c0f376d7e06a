"""A progress bar for the start-up scans over many files (VOC annotations, segmentation masks).

Reading the ~17k annotations of VOC or the masks of a large folder set takes minutes; the scans
show a `keras.utils.Progbar` then, while small sets (tests, toy folders) stay quiet.
"""

import keras

PROGRESS_MIN_FILES = 200  # scans over this many files or fewer print nothing


def with_progress(items, total, what, verbose=True):
    """Yields `items` unchanged, with a progress bar over them when there are many.

    Args:
        items: Iterable of `total` elements, e.g. the results of a thread pool's `map`.
        total: Number of elements.
        what: What is read, printed once above the bar, e.g. "VOC annotations".
        verbose: False keeps the scan quiet however many files it reads.
    """
    if not verbose or total <= PROGRESS_MIN_FILES:
        yield from items
        return
    print(f"Reading {total} {what}")
    bar = keras.utils.Progbar(total, unit_name="file")
    for done, item in enumerate(items, 1):
        yield item
        bar.update(done)
