"""The `synthetic` labelled source: the pretext's procedural scenes with their labels and masks.

Synthetic downstream data comes from the same renderer as the pretext but never from the
pretext's scenes: scene `i` of the pretext is Philox-keyed by `(seed, i)` with the run seed
(default 0, val from index 2**40), while every downstream scene is keyed by
`(SYNTHETIC_DOWNSTREAM_SEED, i)`, a constant outside the 32-bit range of run seeds (so the
downstream sets are also the same whatever the run seed, which only changes the shuffle).
Train, val and test use the disjoint index ranges [0, n), [2**41, 2**41 + n) and
[2**42, 2**42 + n); default sizes `source.SYNTHETIC_SPLIT_SIZES`. Classification labels are the
renderer's multi-hot labels (K classes); segmentation masks have K + 1 classes, 0 = background,
and no void.
"""

import numpy as np
import tensorflow as tf

from data import synthetic
from data.labelled.source import LabelledSource, _check_fixed_classes
from data.labelled.splits import SPLITS

SYNTHETIC_DOWNSTREAM_SEED = 2**32 + 7  # no 32-bit run seed (the pretext's) can equal it
SYNTHETIC_STARTS = {"train": 0, "val": 2**41, "test": 2**42}


def parse_synthetic(rest, task, options):
    """The `synthetic` source of `task` with `options.synthetic_classes` scene classes."""
    del rest  # "synthetic" takes no argument
    synthetic_classes = options.synthetic_classes
    if (isinstance(synthetic_classes, bool) or not isinstance(synthetic_classes, (int, np.integer))
            or not 1 <= synthetic_classes <= synthetic.MAX_CLASSES):
        raise ValueError(f"synthetic_classes must be an int in [1, {synthetic.MAX_CLASSES}], "
                         f"received {synthetic_classes!r}.")
    k = int(synthetic_classes)
    names = list(synthetic.SYNTHETIC_CLASS_NAMES[:k])
    if task == "segmentation":
        names = ["background"] + names
    _check_fixed_classes(options.num_classes, len(names), f"The synthetic {task} set")
    return LabelledSource(
        name="synthetic", num_classes=len(names), class_names=names, void_index=None,
        splits={split: None for split in SPLITS}, task=task, kind="synthetic",
        split_mode=options.split_mode, synthetic_classes=k,
    )


def synthetic_scenes(source, split, image_size, seed, training, size):
    """Unbatched scene dicts of one split of a synthetic source, shuffled with `seed` in training."""
    n = source.split_size(split, size)
    start = SYNTHETIC_STARTS[split]
    indices = tf.data.Dataset.range(start, start + n, output_type=tf.int64)
    if training:
        indices = indices.shuffle(max(n, 1), seed=seed, reshuffle_each_iteration=True)

    render = synthetic.scene_renderer(SYNTHETIC_DOWNSTREAM_SEED, image_size, source.synthetic_classes)
    # Scene i depends on (seed, i) only, whatever batch it is rendered in.
    return indices.batch(64).map(render, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
