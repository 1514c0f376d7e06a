"""Frozen-feature linear probes, the benchmark colorization pretexts are compared on (Goyal, Mahajan,
Gupta, Misra, "Scaling and Benchmarking Self-Supervised Visual Representation Learning", ICCV 2019).

For every encoder level of a frozen network (`enc1` ... `bottleneck` for the U-Net, the five skips of
MobileNetV2), the features are average-pooled to about 9k values, L2-normalized, and one linear SVM
per class (scikit-learn's `LinearSVC`: squared hinge, L2 penalty, positives weighted 2 : 1) is
trained on the training images, its cost C chosen by 3-fold cross-validation on average precision
over a log grid; the test mAP per level says how linearly the level separates the classes.

Low-shot: k positives per class (k = 1, 2, 4, ...) and (C - 1) k negatives, drawn at random several
times; each class keeps the cost that cross-validation chose on the whole training set (with one
positive there is nothing to cross-validate). Random init of the same backbone is the floor.
"""

import math
import warnings

import keras
import numpy as np
import tensorflow as tf
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.svm import LinearSVC

from cgan_colorization.pretexts import registry
from transfer import metrics as tm
from transfer.config import DRAWS, SHOTS  # noqa: F401 - the low-shot protocol, defined with the probe config
from transfer.models import transfer_weights

POOLED_SIZE = 9216  # values per level after average pooling (Goyal et al. pool each level to about 9k)
COSTS = tuple(10.0 ** e for e in range(-4, 3))  # the cost grid of the cross-validation
FOLDS = 3
POSITIVE_WEIGHT = 2.0  # positives weighted 2 : 1 against negatives, as Goyal et al.


def encoder_levels(backbone, image_size, base_filters, colorizer=None, seed=0):
    """A model image -> [one tensor per encoder level] of `backbone`, initialised from the
    `colorizer` network (strictly, by layer name) or at random; and the level names."""
    features = registry.BACKBONES[backbone].build(image_size, base_filters, seed=seed, decoder=False)
    model = keras.Model(features.inputs, list(features.skips), name=f"{backbone}_encoder")
    model.head_layers = ()  # every layer must come from the colorizer
    if colorizer is not None:
        transfer_weights(colorizer, model)
    return model, list(features.names)


def pool(level, target=POOLED_SIZE):
    """[B, H, W, C] -> [B, about `target`] by average pooling to a g x g grid (g <= H)."""
    height, channels = int(level.shape[1]), int(level.shape[-1])
    grid = max(1, min(height, int(round(math.sqrt(target / channels)))))
    if grid < height:
        level = tf.image.resize(level, [grid, grid], method="area")
    return tf.reshape(level, [tf.shape(level)[0], -1])


def extract(model, names, dataset, progress=True, pooled_size=POOLED_SIZE):
    """{level name: L2-normalized features [N, D] float32, average-pooled to about `pooled_size`
    values} and the labels [N, C] of a dataset of (image, multi-hot or one-hot labels) batches."""
    chunks, labels = {name: [] for name in names}, []
    bar = keras.utils.Progbar(None, unit_name="batch") if progress else None
    for i, (x, y) in enumerate(dataset, start=1):
        outputs = model(x, training=False)
        for name, level in zip(names, outputs):
            chunks[name].append(pool(level, pooled_size).numpy())
        labels.append(y.numpy())
        if bar:
            bar.update(i)
    features = {}
    for name, parts in chunks.items():
        x = np.concatenate(parts).astype(np.float32)
        features[name] = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return features, np.concatenate(labels).astype(np.int64)


def _svm(cost):
    return LinearSVC(C=cost, loss="squared_hinge", penalty="l2", class_weight={0: 1.0, 1: POSITIVE_WEIGHT},
                     max_iter=5000)


def choose_cost(x, y, costs=COSTS, folds=FOLDS, seed=0):
    """(cost, its mean cross-validated AP) by `folds`-fold stratified cross-validation on average
    precision; with fewer than 2 positives or negatives, (1.0, NaN). Ties go to the smaller cost."""
    splits = min(folds, int(y.sum()), int(len(y) - y.sum()))
    if splits < 2:
        return 1.0, float("nan")
    cv = StratifiedKFold(splits, shuffle=True, random_state=seed)
    scores = [cross_val_score(_svm(c), x, y, cv=cv, scoring="average_precision").mean() for c in costs]
    best = int(np.argmax(scores))
    return float(costs[best]), float(scores[best])


def _fit_scores(x, y, cost, x_test):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _svm(cost).fit(x, y).decision_function(x_test)


def training_span(x_train, x_test):
    """Both sets in an orthonormal basis of the span of the training features, when it has fewer
    dimensions than the features. Exact for every linear SVM trained on (a subset of) these training
    images: its weights lie in that span (the representer theorem), so every decision value is
    unchanged, while each fit works in at most N instead of D dimensions."""
    if x_train.shape[1] <= x_train.shape[0]:
        return x_train, x_test
    _, singular, vt = np.linalg.svd(x_train.astype(np.float64), full_matrices=False)
    basis = vt[singular > singular[0] * 1e-10].T
    return (x_train @ basis).astype(np.float32), (x_test @ basis).astype(np.float32)


def probe_level(x_train, y_train, x_test, y_test, costs=COSTS, folds=FOLDS, seed=0):
    """One level: per class, the cost chosen by cross-validation, the SVM refit on all training
    images and scored on the test images. Returns {"mAP", "ap", "cost", "cv_ap"} (classes without
    a positive or a negative in the training set score NaN and stay out of mAP)."""
    x_train, x_test = training_span(x_train, x_test)
    classes = y_train.shape[1]
    scores = np.zeros((len(x_test), classes))
    chosen, cv_ap, usable = [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for c in range(classes):
            y = y_train[:, c]
            if y.min() == y.max():
                chosen.append(float("nan"))
                cv_ap.append(float("nan"))
                continue
            cost, score = choose_cost(x_train, y, costs, folds, seed)
            scores[:, c] = _fit_scores(x_train, y, cost, x_test)
            chosen.append(cost)
            cv_ap.append(score)
            usable.append(c)
    ap = np.full(classes, np.nan)
    if usable:
        ap[usable] = tm.average_precision(y_test[:, usable], scores[:, usable])
    return {"mAP": tm._nanmean(ap), "ap": ap.tolist(), "cost": chosen, "cv_ap": cv_ap}


def draw_low_shot(y_train, k, rng):
    """For each class c, the training indices of k positives and (C - 1) k negatives of c (fewer
    when the set has fewer), drawn without replacement. Returns [(positives, negatives)] per class
    (None for a class with no positive or no negative)."""
    classes = y_train.shape[1]
    draws = []
    for c in range(classes):
        positives = np.flatnonzero(y_train[:, c] == 1)
        negatives = np.flatnonzero(y_train[:, c] == 0)
        if not len(positives) or not len(negatives):
            draws.append(None)
            continue
        draws.append((rng.choice(positives, min(k, len(positives)), replace=False),
                      rng.choice(negatives, min((classes - 1) * k, len(negatives)), replace=False)))
    return draws


def low_shot(x_train, y_train, x_test, y_test, costs_per_class, shots=SHOTS, draws=DRAWS, seed=0):
    """{k: {"mean", "std", "draws"}} test mAP with k positives per class, over `draws` random draws."""
    result = {}
    for k in shots:
        rng = np.random.default_rng([seed, k])
        values = []
        for _ in range(draws):
            scores = np.zeros((len(x_test), y_train.shape[1]))
            usable = []
            for c, picked in enumerate(draw_low_shot(y_train, k, rng)):
                if picked is None or not np.isfinite(costs_per_class[c]):
                    continue
                index = np.concatenate(picked)
                scores[:, c] = _fit_scores(x_train[index], y_train[index, c], costs_per_class[c], x_test)
                usable.append(c)
            ap = tm.average_precision(y_test[:, usable], scores[:, usable]) if usable else [np.nan]
            values.append(tm._nanmean(ap))
        result[k] = {"mean": float(np.nanmean(values)), "std": float(np.nanstd(values)), "draws": values}
    return result


def probe(train_features, y_train, test_features, y_test, costs=COSTS, shots=SHOTS, draws=DRAWS, seed=0,
          log=print):
    """Every level: the full probe and the low-shot curves. Returns {"levels": {name: {...,
    "low_shot": {...}}}, "best_level": the level with the highest mean cross-validated AP (chosen on
    the training images, never on the test ones)}."""
    levels = {}
    for name, features in train_features.items():
        x_train, x_test = training_span(features, test_features[name])  # once for the level: exact, faster
        result = probe_level(x_train, y_train, x_test, y_test, costs, seed=seed)
        if shots:
            result["low_shot"] = low_shot(x_train, y_train, x_test, y_test, result["cost"], shots, draws, seed)
        result["dim"] = int(features.shape[1])
        levels[name] = result
        log(f"  {name:<22} dim {features.shape[1]:>6}  test mAP {100 * result['mAP']:6.2f}")
    cv = {name: np.nanmean(r["cv_ap"]) if np.isfinite(r["cv_ap"]).any() else -1.0 for name, r in levels.items()}
    return {"levels": levels, "best_level": max(cv, key=cv.get)}
