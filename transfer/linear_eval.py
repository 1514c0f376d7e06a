"""Linear evaluation: top-1 accuracy of a linear softmax classifier on frozen, pooled features, the
self-supervised field's standard classification measure (Goyal, Mahajan, Gupta, Misra, ICCV 2019;
Kolesnikov, Zhai, Beyer, "Revisiting Self-Supervised Visual Representation Learning", CVPR 2019).

It complements `probes` (one linear SVM per class, for multi-label Pascal VOC) on single-label tasks
with many classes (Tiny ImageNet: 202 classes, up to 50k training images, ~2k-9k values per level),
where scikit-learn's per-class `LinearSVC` does not scale. The classifier is linear (softmax
cross-entropy on its logits, an L2 penalty on the kernel and none on the bias), trained with Adam on
in-memory features in seeded mini-batches for a fixed number of epochs and handed back as a Keras
`Dense(num_classes)` layer; (learning rate, weight decay) is chosen on the validation split and the
chosen model is scored on the test split. The grid's classifiers are trained side by side in one
traced step (`fit_linear_grid`), each batch gathered once for all of them, with the very Adam and
schedule of `Dense` + `model.fit` (their weights agree to ~1e-8).

Cost, measured on this project's 2-core CPU (TensorFlow 2.21, oneDNN on, nothing else running): one
`linear_top1` call with the defaults on random float32 features, 10,000 x 2,048 train, 2,000 x 2,048
val and test, 202 classes (6 classifiers, 8 epochs of 39 steps), took 18-21 s; one `Dense` +
`model.fit` per grid point, the earlier way, took 40.6 s in the same process. The time grows about
linearly in train images x values x classes x epochs x grid points, so 10 networks x 6 levels of
that size take ~20 min; at 50k x 9,216 a call is ~22x that (~7 min), more when the cores are busy.
"""

import keras
import numpy as np
import tensorflow as tf

from transfer.metrics import top_k_accuracy

__all__ = ["GRID", "EPOCHS", "BATCH_SIZE", "standardize", "fit_linear", "fit_linear_grid", "logits", "top_k_accuracy",
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

    Batch i is a pure function of (seed, i), so the reading order cannot change the batches and
    nothing global (Python's or NumPy's random state) is read. `fit_linear_grid` reads it by index;
    being a `PyDataset`, `model.fit` reads the very same batches as one epoch of all the steps.
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
    standardization here: `linear_top1` does it): `fit_linear_grid` with one (lr, weight_decay) pair.

    Returns:
        The trained `keras.Model`, named "linear_eval", its layer "linear_head".
    """
    return fit_linear_grid(x_train, y_train, num_classes, ((lr, weight_decay),), epochs, batch_size, seed)[0]


def _check_grid(grid):
    grid = tuple(grid)
    if not grid:
        raise ValueError(f"the grid needs at least one (learning rate, weight decay) pair, received {grid!r}.")
    if not all(len(pair) == 2 for pair in grid):
        raise ValueError(f"every grid point must be a (learning rate, weight decay) pair, received {grid!r}.")
    for lr, weight_decay in grid:
        if not lr > 0 or not weight_decay >= 0:
            raise ValueError(f"the learning rate must be > 0 and the weight decay >= 0, received {(lr, weight_decay)!r}.")
    return tuple((float(lr), float(weight_decay)) for lr, weight_decay in grid)


def fit_linear_grid(x_train, y_train, num_classes, grid=GRID, epochs=EPOCHS, batch_size=BATCH_SIZE, seed=0):
    """One linear softmax classifier per (learning rate, weight decay) pair of `grid`, all trained
    together: every step reads one batch and updates every classifier, so the batches are gathered once
    and the step is traced once, whatever the grid's size.

    Each classifier is what a Keras `Dense(num_classes)` layer compiled with
    `Adam(CosineDecay(lr, steps))` and `SparseCategoricalCrossentropy(from_logits=True)` learns with
    `kernel_regularizer=L2(weight_decay)`: the kernel starts at zero (the objective is convex, so
    nothing needs breaking); the loss is the batch's mean cross-entropy plus `weight_decay` x
    sum(kernel ** 2) (no 1/2, the bias left free); Adam (beta 0.9 / 0.999, epsilon 1e-7) steps with a
    learning rate that decays from `lr` to 0 along a cosine over all steps, so training ends settled
    rather than at Adam's noise floor. The classifiers share nothing but the batches, and the only
    randomness is their seeded order: the same seed gives the same weights.

    Args:
        x_train: features [N, D], float16 or float32.
        y_train: integer class ids [N] in [0, num_classes).
        grid: (learning rate, weight decay) pairs, one classifier each.

    Returns:
        One trained `keras.Model` per pair, in grid order, each named "linear_eval", its layer "linear_head".
    """
    x_train = _check_features(x_train, "training")
    y_train = _check_labels(y_train, len(x_train), num_classes, "training")
    _check_positive("num_classes", num_classes, 2)
    _check_positive("epochs", epochs)
    _check_positive("batch_size", batch_size)
    grid = _check_grid(grid)
    batches = _Batches(x_train, y_train, batch_size, epochs, seed)
    count, dim, steps = len(grid), x_train.shape[1], len(batches)
    lrs = tf.constant([lr for lr, _ in grid], tf.float32)
    decays = tf.constant([weight_decay for _, weight_decay in grid], tf.float32)
    kernel = tf.Variable(tf.zeros([count, dim, num_classes]))
    bias = tf.Variable(tf.zeros([count, num_classes]))
    moments = [(tf.Variable(tf.zeros_like(v)), tf.Variable(tf.zeros_like(v))) for v in (kernel, bias)]
    beta_1, beta_2, epsilon = 0.9, 0.999, 1e-7

    @tf.function(autograph=False)
    def step(x, y, iteration):
        with tf.GradientTape() as tape:
            scores = tf.einsum("bd,gdc->gbc", x, kernel) + bias[:, None, :]
            labels = tf.broadcast_to(y, [count, tf.shape(y)[0]])
            cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=scores)
            penalty = decays * tf.reduce_sum(tf.square(kernel), axis=[1, 2])
            loss = tf.reduce_sum(tf.reduce_mean(cross_entropy, axis=1) + penalty)  # the heads' losses are apart
        gradients = tape.gradient(loss, [kernel, bias])
        # Keras' CosineDecay at the optimizer's step count before this step, then Adam's bias correction.
        lr = lrs * 0.5 * (1.0 + tf.cos(np.pi * tf.minimum(iteration, steps) / steps))
        local = iteration + 1.0
        alpha = lr * tf.sqrt(1.0 - beta_2 ** local) / (1.0 - beta_1 ** local)
        for variable, gradient, (m, v) in zip((kernel, bias), gradients, moments):
            m.assign_add((gradient - m) * (1.0 - beta_1))
            v.assign_add((tf.square(gradient) - v) * (1.0 - beta_2))
            shape = [count] + [1] * (variable.shape.rank - 1)
            variable.assign_sub(tf.reshape(alpha, shape) * m / (tf.sqrt(v) + epsilon))

    for index in range(steps):
        x, y = batches[index]
        step(tf.constant(x), tf.constant(y), tf.constant(index, tf.float32))
    models = []
    for head, (_, weight_decay) in enumerate(grid):
        inputs = keras.Input((dim,), name="features")
        layer = keras.layers.Dense(num_classes, kernel_initializer="zeros",
                                   kernel_regularizer=keras.regularizers.L2(weight_decay), name="linear_head")
        model = keras.Model(inputs, layer(inputs), name="linear_eval")
        layer.set_weights([kernel[head].numpy(), bias[head].numpy()])
        models.append(model)
    return models


def logits(model, x):
    """[N, num_classes] float32 logits of `model` on features [N, D], a bounded batch at a time."""
    # eager calls: nothing to trace per model, so a grid of models leaves no retracing warnings
    parts = [keras.ops.convert_to_numpy(model(x[start:start + _PREDICT_BATCH].astype(np.float32), training=False))
             for start in range(0, len(x), _PREDICT_BATCH)]
    return np.concatenate(parts).astype(np.float32)


def linear_top1(x_train, y_train, x_val, y_val, x_test, y_test, num_classes, grid=GRID, epochs=EPOCHS,
                batch_size=BATCH_SIZE, seed=0, log=_quiet, predictions=False):
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
        predictions: also return the chosen model's class for every test image ("test_predictions",
            a list), for statistics over test images (e.g. a paired bootstrap).

    Returns:
        A JSON-serializable dict: {"top1", "top5": test accuracies of the chosen model,
        "lr", "weight_decay", "val_top1", "grid_index": the chosen pair, its val top-1 and place in
        `grid`, "grid": [{"lr", "weight_decay", "val_top1"}] for every pair in order, "dim",
        "num_classes", "num_train", "num_val", "num_test", "epochs", "batch_size", "seed"}.
    """
    grid = _check_grid(grid)
    x_train = _check_features(x_train, "training")
    _check_positive("num_classes", num_classes, 2)
    y_train = _check_labels(y_train, len(x_train), num_classes, "training")
    x_val = _check_features(x_val, "validation", x_train.shape[1])
    y_val = _check_labels(y_val, len(x_val), num_classes, "validation")
    x_test = _check_features(x_test, "test", x_train.shape[1])
    y_test = _check_labels(y_test, len(x_test), num_classes, "test")
    x_train, x_val, x_test = standardize(x_train, x_val, x_test)

    points, best, best_model = [], -1, None
    models = fit_linear_grid(x_train, y_train, num_classes, grid, epochs, batch_size, seed)
    for index, ((lr, weight_decay), model) in enumerate(zip(grid, models)):
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
    if predictions:
        result["test_predictions"] = test_logits.argmax(axis=1).tolist()
    log(f"  chosen lr {result['lr']:g}, weight decay {result['weight_decay']:g}: test top-1 "
        f"{100 * result['top1']:6.2f}, top-5 {100 * result['top5']:6.2f}")
    return result
