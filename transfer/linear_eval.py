"""Linear evaluation: top-1 accuracy of a linear softmax classifier on frozen, pooled features, the
self-supervised field's standard classification measure (Goyal, Mahajan, Gupta, Misra, ICCV 2019;
Kolesnikov, Zhai, Beyer, "Revisiting Self-Supervised Visual Representation Learning", CVPR 2019).

It complements `probes` (one linear SVM per class, for multi-label Pascal VOC) on single-label tasks
with many classes (Tiny ImageNet: 202 classes, up to 50k training images, ~2k-9k values per level),
where scikit-learn's per-class `LinearSVC` does not scale. The classifier is one Keras
`Dense(num_classes)` layer (softmax cross-entropy on its logits, an L2 penalty on the kernel and
none on the bias) trained with Adam on in-memory features in seeded mini-batches for a fixed number
of epochs; (learning rate, weight decay) is chosen on the validation split and the chosen model
is scored on the test split.

Cost, measured once on this project's 2-core CPU (TensorFlow 2.21, oneDNN on; the load average of
the other jobs was ~1.4): one `linear_top1` call with the defaults on random float32 features, 10,000
x 2,048 train, 2,000 x 2,048 val and test, 202 classes, took 28 s (6 fits of 8 epochs of 39 steps;
test top-1 0.55%, chance 0.50%). The time grows about linearly in train images x values x classes x
epochs x grid points, so 10 networks x 6 levels of that size take ~30 min; at 50k x 9,216 a call
is ~22x that (~11 min) and 60 of them ~10 h, more when the cores are busy with training.
"""

import keras
import numpy as np

from transfer.metrics import top_k_accuracy

__all__ = ["GRID", "EPOCHS", "BATCH_SIZE", "standardize", "fit_linear", "logits", "top_k_accuracy",
           "linear_top1"]

# (learning rate, weight decay) pairs searched on the validation split. With standardized features one
# Adam grid suits every level whatever its size. In a budget of a few hundred steps the learning rate is
# the main regularizer (it bounds how far the weights travel from 0) and the L2 penalty a second one,
# so the two decays are far apart: 1e-4 barely bites, 3e-2 does (coupled L2 is weakened by Adam's
# per-weight scaling). On a synthetic level (5k x 1,024 ReLU features, 100 classes) this search's
# best val top-1 (32.0%) matched or beat a converged L2 logistic regression at its best cost (30.2%),
# and 24 epochs scored below 8 at every learning rate.
GRID = tuple((lr, wd) for lr in (3e-4, 1e-3, 3e-3) for wd in (1e-4, 3e-2))
EPOCHS = 8
BATCH_SIZE = 256
_PREDICT_BATCH = 4096
_STANDARDIZE_CHUNK = 4096  # rows at a time, so a 50k x 9k float16 set never needs a float64 copy


def _quiet(_message):
    pass


def _check_features(x, split, dim=None):
    x = np.asarray(x)
    if x.ndim != 2 or not len(x):
        raise ValueError(f"{split} features must be a non-empty [N, D] array, received shape {x.shape}.")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{split} features must have the training set's {dim} values, received {x.shape[1]}.")
    return x


def _check_labels(y, count, num_classes, split):
    y = np.asarray(y)
    if y.shape != (count,):
        raise ValueError(f"{split} labels must be {count} class ids, one per feature row, received shape {y.shape}.")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{split} labels must be integer class ids, received dtype {y.dtype}.")
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"{split} labels must lie in [0, {num_classes}), received {y.min()}..{y.max()}.")
    return y.astype(np.int64)


def _check_positive(name, value, minimum=1):
    if not value >= minimum:
        raise ValueError(f"{name} must be at least {minimum}, received {value!r}.")


def standardize(x_train, *others):
    """Every set standardized with the training set's per-dimension mean and std (a dimension that is
    constant on the training set, e.g. a dead ReLU channel, becomes 0).

    Standardization, not the L2 normalization of `probes`: the levels differ in size (2k-9k values)
    and in the scale of each value, and unit-variance inputs let one Adam learning-rate grid suit them
    all; with L2-normalized rows the right rate and weight decay would move with D. The statistics come
    from the training set only, so nothing of val or test leaks into the classifier. float16 stays
    float16 (standardized values are small), anything else becomes float32.

    Returns:
        The standardized arrays, in the order given.
    """
    x_train = _check_features(x_train, "training")
    total, sum_squares = np.zeros(x_train.shape[1]), np.zeros(x_train.shape[1])
    for start in range(0, len(x_train), _STANDARDIZE_CHUNK):
        chunk = x_train[start:start + _STANDARDIZE_CHUNK].astype(np.float64)
        total += chunk.sum(axis=0)
        sum_squares += np.square(chunk).sum(axis=0)
    mean = total / len(x_train)
    if not np.isfinite(mean).all():
        raise ValueError(f"training features must be finite, received {np.count_nonzero(~np.isfinite(mean))} "
                         f"dimensions with NaN or inf.")
    std = np.sqrt(np.maximum(sum_squares / len(x_train) - np.square(mean), 0.0))
    std[std <= 1e-6 * max(float(std.max()), 1e-30)] = 1.0  # constant dimensions: centred to 0, not divided
    outputs = []
    for x in (x_train, *others):
        x = _check_features(x, "evaluation", x_train.shape[1])
        out = np.empty(x.shape, np.float16 if x.dtype == np.float16 else np.float32)
        for start in range(0, len(x), _STANDARDIZE_CHUNK):
            out[start:start + _STANDARDIZE_CHUNK] = (x[start:start + _STANDARDIZE_CHUNK] - mean) / std
        outputs.append(out)
    return outputs


class _Batches(keras.utils.PyDataset):
    """`epochs` passes over (x, y), each in its own seeded random order, as one stream of batches.

    Batch i is a pure function of (seed, i), so prefetching cannot change the order and nothing
    global (Python's or NumPy's random state) is read; Keras is asked for one epoch of all the steps.
    The last N mod batch_size images of each order are left out (others next time), so every batch
    has the same shape and the step is traced once.
    """

    def __init__(self, x, y, batch_size, epochs, seed):
        super().__init__()
        self.x, self.y, self.seed = x, y, seed
        self.batch_size = min(batch_size, len(x))
        self.steps_per_epoch = len(x) // self.batch_size
        self.epochs = epochs
        self._order = (None, None)  # (epoch, permutation) of the epoch last read

    def __len__(self):
        return self.steps_per_epoch * self.epochs

    def __getitem__(self, index):
        epoch, step = divmod(index, self.steps_per_epoch)
        if self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self.x)))
        rows = np.sort(self._order[1][step * self.batch_size:(step + 1) * self.batch_size])  # sorted: faster gather
        return self.x[rows].astype(np.float32), self.y[rows]


def fit_linear(x_train, y_train, num_classes, lr=1e-3, weight_decay=1e-4, epochs=EPOCHS, batch_size=BATCH_SIZE,
               seed=0):
    """A linear softmax classifier [N, D] -> [N, num_classes] logits, fit on the features as given (no
    standardization here: `linear_top1` does it).

    The kernel starts at zero (the objective is convex, so nothing needs breaking) and the only
    randomness is the seeded batch order: the same seed gives the same weights. The learning rate
    decays from `lr` to 0 along a cosine over all steps, so training ends settled rather than at
    Adam's noise floor. `weight_decay` multiplies sum(kernel ** 2) in the loss (Keras' `L2`, no 1/2):
    a penalty on the objective itself, the bias left free.

    Args:
        x_train: features [N, D], float16 or float32.
        y_train: integer class ids [N] in [0, num_classes).

    Returns:
        The trained `keras.Model`, named "linear_eval", its layer "linear_head".
    """
    x_train = _check_features(x_train, "training")
    y_train = _check_labels(y_train, len(x_train), num_classes, "training")
    _check_positive("num_classes", num_classes, 2)
    _check_positive("epochs", epochs)
    _check_positive("batch_size", batch_size)
    if not lr > 0 or not weight_decay >= 0:
        raise ValueError(f"the learning rate must be > 0 and the weight decay >= 0, received {(lr, weight_decay)!r}.")
    batches = _Batches(x_train, y_train, batch_size, epochs, seed)
    inputs = keras.Input((x_train.shape[1],), name="features")
    head = keras.layers.Dense(num_classes, kernel_initializer="zeros", kernel_regularizer=keras.regularizers.L2(
        weight_decay), name="linear_head")
    model = keras.Model(inputs, head(inputs), name="linear_eval")
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=len(batches))
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(batches, epochs=1, shuffle=False, verbose=0)
    return model


def logits(model, x):
    """[N, num_classes] float32 logits of `model` on features [N, D], a bounded batch at a time."""
    # eager calls: nothing to trace per model, so a grid of models leaves no retracing warnings
    parts = [keras.ops.convert_to_numpy(model(x[start:start + _PREDICT_BATCH].astype(np.float32), training=False))
             for start in range(0, len(x), _PREDICT_BATCH)]
    return np.concatenate(parts).astype(np.float32)


def linear_top1(x_train, y_train, x_val, y_val, x_test, y_test, num_classes, grid=GRID, epochs=EPOCHS,
                batch_size=BATCH_SIZE, seed=0, log=_quiet):
    """Test top-1 and top-5 of a linear softmax classifier on one level's frozen features, its
    (learning rate, weight decay) chosen on the validation split.

    Every pair of `grid` is fit on the training split (standardized with its own statistics, which
    are also applied to val and test) and scored by val top-1; the best pair wins, ties going to the
    first in grid order. The model fit for that pair is the one scored on test: it is trained on the
    training split only, never on train + val (refitting it on train with the same seed would give
    the same weights), so the test number matches a protocol that never touched val for fitting.

    Args:
        x_*: features [N, D] (float16 or float32) of the training, validation and test images.
        y_*: their integer class ids [N] in [0, num_classes).
        grid: (learning rate, weight decay) pairs to search.
        log: called with one line per grid point and one for the result; silent by default.

    Returns:
        A JSON-serializable dict: {"top1", "top5": test accuracies of the chosen model,
        "lr", "weight_decay", "val_top1", "grid_index": the chosen pair, its val top-1 and place in
        `grid`, "grid": [{"lr", "weight_decay", "val_top1"}] for every pair in order, "dim",
        "num_classes", "num_train", "num_val", "num_test", "epochs", "batch_size", "seed"}.
    """
    grid = tuple(grid)
    if not grid:
        raise ValueError(f"the grid needs at least one (learning rate, weight decay) pair, received {grid!r}.")
    if not all(len(pair) == 2 for pair in grid):
        raise ValueError(f"every grid point must be a (learning rate, weight decay) pair, received {grid!r}.")
    x_train = _check_features(x_train, "training")
    _check_positive("num_classes", num_classes, 2)
    y_train = _check_labels(y_train, len(x_train), num_classes, "training")
    x_val = _check_features(x_val, "validation", x_train.shape[1])
    y_val = _check_labels(y_val, len(x_val), num_classes, "validation")
    x_test = _check_features(x_test, "test", x_train.shape[1])
    y_test = _check_labels(y_test, len(x_test), num_classes, "test")
    x_train, x_val, x_test = standardize(x_train, x_val, x_test)

    points, best, best_model = [], -1, None
    for index, (lr, weight_decay) in enumerate(grid):
        model = fit_linear(x_train, y_train, num_classes, lr, weight_decay, epochs, batch_size, seed)
        val_top1 = top_k_accuracy(y_val, logits(model, x_val), 1)
        points.append({"lr": float(lr), "weight_decay": float(weight_decay), "val_top1": val_top1})
        log(f"  lr {lr:<8g} weight decay {weight_decay:<8g} val top-1 {100 * val_top1:6.2f}")
        if best < 0 or val_top1 > points[best]["val_top1"]:  # strictly better: ties keep the earlier pair
            best, best_model = index, model
    test_logits = logits(best_model, x_test)
    result = {
        "top1": top_k_accuracy(y_test, test_logits, 1),
        "top5": top_k_accuracy(y_test, test_logits, 5),
        **points[best],
        "grid_index": best,
        "grid": points,
        "dim": int(x_train.shape[1]),
        "num_classes": int(num_classes),
        "num_train": len(x_train),
        "num_val": len(x_val),
        "num_test": len(x_test),
        "epochs": int(epochs),
        "batch_size": int(batch_size),
        "seed": int(seed),
    }
    log(f"  chosen lr {result['lr']:g}, weight decay {result['weight_decay']:g}: test top-1 "
        f"{100 * result['top1']:6.2f}, top-5 {100 * result['top5']:6.2f}")
    return result
