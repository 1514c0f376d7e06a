"""Scores of the two downstream tasks that measure how good the transferred colorization features are.

* Pascal VOC multi-label classification (20 classes), scored by mAP, the mean over classes of
  scikit-learn's `average_precision_score`, plus thresholded measures from scikit-learn (exact
  match, per-label accuracy, sample F1).
* Single-label classification (e.g. Tiny ImageNet, 202 classes), scored by top-1 and top-5 accuracy
  and the mean over classes of the per-class top-1 accuracy.
* Pascal VOC semantic segmentation (21 classes, `VOID` pixels ignored), scored by mIoU from a
  confusion matrix. Matrices of disjoint batches add up, so a test set is scored batch by batch.

Training uses Keras directly: the loss is `keras.losses.SparseCategoricalCrossentropy(
ignore_class=VOID)` and the streaming metric `keras.metrics.MeanIoU(num_classes,
ignore_class=VOID, sparse_y_pred=False, name="mean_iou")`; tests/test_transfer_metrics.py checks
that both agree with the numpy definitions here on void-heavy masks.
"""

import numpy as np
from sklearn import metrics as skm

from data.labelled.masks import VOID

__all__ = [
    "average_precision",
    "mean_average_precision",
    "exact_match_accuracy",
    "per_label_accuracy",
    "sample_f1",
    "classification_report",
    "top_k_accuracy",
    "single_label_report",
    "confusion_matrix",
    "iou_from_confusion",
    "mean_iou",
    "pixel_accuracy",
    "mean_class_accuracy",
    "segmentation_report",
]


def _nanmean(values):
    """Mean over the non-NaN entries, NaN without a warning when there are none (np.nanmean warns)."""
    values = np.asarray(values, dtype=np.float64)
    finite = ~np.isnan(values)
    return float(values[finite].mean()) if finite.any() else float("nan")


def _class_names(class_names, count):
    if class_names is None:
        return [f"class_{index}" for index in range(count)]
    class_names = [str(name) for name in class_names]
    if len(class_names) != count:
        raise ValueError(f"class_names must have one name per class ({count}), got {len(class_names)} names.")
    return class_names


# --------------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------------


def _check_multilabel(y_true, scores):
    """Validated int y_true {0, 1} and float64 scores, both [N, C] (1-D input means C = 1)."""
    y_true = np.asarray(y_true)
    scores = np.asarray(scores, dtype=np.float64)
    if y_true.ndim == 1:
        y_true = y_true[:, None]
    if scores.ndim == 1:
        scores = scores[:, None]
    if y_true.ndim != 2:
        raise ValueError(f"y_true must be a [N, C] label matrix, got shape {y_true.shape}.")
    if y_true.shape != scores.shape:
        raise ValueError(f"y_true and scores must have the same shape, got {y_true.shape} and {scores.shape}.")
    if y_true.shape[0] == 0:
        raise ValueError(f"y_true must hold at least one sample, got shape {y_true.shape}.")
    bad = ~np.isin(y_true, (0, 1))
    if bad.any():
        raise ValueError(f"y_true must contain only 0 and 1, got the value {y_true[bad][0].item()}.")
    if not np.isfinite(scores).all():
        raise ValueError(f"scores must be finite, got the value {scores[~np.isfinite(scores)][0].item()}.")
    return y_true.astype(np.int64), scores


def average_precision(y_true, scores):
    """Per-class average precision (area under the precision-recall curve), NaN without positives.

    scikit-learn's `average_precision_score` per class; a class without positives is not passed to
    it (sklearn would warn and return 0) but gets NaN, so that mAP leaves it out instead of
    counting it as a failure.

    Args:
        y_true: {0, 1} array [N, C].
        scores: real-valued confidences [N, C] (e.g. sigmoid outputs); higher = more likely.

    Returns:
        float64 array [C].
    """
    y_true, scores = _check_multilabel(y_true, scores)
    return np.array([skm.average_precision_score(y_true[:, c], scores[:, c]) if y_true[:, c].any() else np.nan
                     for c in range(y_true.shape[1])], dtype=np.float64)


def mean_average_precision(y_true, scores):
    """mAP, the standard VOC classification measure: the mean AP over classes that have positives."""
    return _nanmean(average_precision(y_true, scores))


def _binarize(y_true, scores, threshold):
    y_true, scores = _check_multilabel(y_true, scores)
    return y_true, (scores >= threshold).astype(np.int64)


def exact_match_accuracy(y_true, scores, threshold=0.5):
    """Fraction of images whose whole label set is predicted exactly (a label is on if score >= threshold)."""
    return float(skm.accuracy_score(*_binarize(y_true, scores, threshold)))


def per_label_accuracy(y_true, scores, threshold=0.5):
    """Fraction of the N * C individual yes/no decisions that are right (1 - Hamming loss)."""
    return 1.0 - float(skm.hamming_loss(*_binarize(y_true, scores, threshold)))


def sample_f1(y_true, scores, threshold=0.5):
    """F1 of each image's predicted label set against its true one, averaged over images.

    An image with no true and no predicted labels scores 1 (`zero_division=1`); one where only one
    of the two sets is empty scores 0. With a single class sklearn refuses sample averaging, but
    each image's F1 is then 1 on a match and 0 otherwise, i.e. the exact-match accuracy.
    """
    truth, predicted = _binarize(y_true, scores, threshold)
    if truth.shape[1] == 1:
        return float(skm.accuracy_score(truth, predicted))
    return float(skm.f1_score(truth, predicted, average="samples", zero_division=1))


def classification_report(y_true, scores, class_names=None, threshold=0.5):
    """All classification measures in one JSON-friendly dict.

    Returns:
        {"mAP", "exact_match_accuracy", "per_label_accuracy", "sample_f1": float,
         "threshold": float, "num_samples": int, "ap": {class name: AP (NaN without positives)}}.
    """
    y_true, scores = _check_multilabel(y_true, scores)
    names = _class_names(class_names, y_true.shape[1])
    ap = average_precision(y_true, scores)
    return {
        "mAP": _nanmean(ap),
        "exact_match_accuracy": exact_match_accuracy(y_true, scores, threshold),
        "per_label_accuracy": per_label_accuracy(y_true, scores, threshold),
        "sample_f1": sample_f1(y_true, scores, threshold),
        "threshold": float(threshold),
        "num_samples": int(y_true.shape[0]),
        "ap": {name: float(value) for name, value in zip(names, ap)},
    }


def _check_single_label(y_true, scores):
    """Validated int class ids [N] (from ids or one-hot rows) and float64 scores [N, C]."""
    scores = np.asarray(scores, dtype=np.float64)
    y_true = np.asarray(y_true)
    if y_true.ndim == 2:
        if y_true.shape != scores.shape or not np.all(y_true.sum(axis=1) == 1):
            raise ValueError(f"one-hot labels must have one 1 per row and the scores' shape {scores.shape}, "
                             f"received {y_true.shape}.")
        y_true = y_true.argmax(axis=1)
    if scores.ndim != 2 or y_true.shape != (scores.shape[0],):
        raise ValueError(f"expected scores [N, C] and N labels, received scores {scores.shape} and labels "
                         f"{y_true.shape}.")
    if len(y_true) and (y_true.min() < 0 or y_true.max() >= scores.shape[1]):
        raise ValueError(f"labels must lie in [0, {scores.shape[1]}), received {y_true.min()}..{y_true.max()}.")
    return y_true.astype(np.int64), scores


def top_k_accuracy(y_true, scores, k=1):
    """Share of images whose true class is among the k highest scores (class ids or one-hot labels)."""
    y_true, scores = _check_single_label(y_true, scores)
    k = min(int(k), scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((top == y_true[:, None]).any(axis=1).mean()) if len(y_true) else float("nan")


def single_label_report(y_true, scores, class_names=None):
    """Top-1, top-5 and mean per-class top-1 accuracy of a single-label classifier, JSON-friendly.

    Returns:
        {"top1", "top5", "mean_class_accuracy": float, "num_samples": int,
         "per_class_top1": {class name: accuracy (NaN for a class with no test image)}}.
    """
    y_true, scores = _check_single_label(y_true, scores)
    names = _class_names(class_names, scores.shape[1])
    hits = scores.argmax(axis=1) == y_true
    per_class = [float(hits[y_true == c].mean()) if np.any(y_true == c) else float("nan")
                 for c in range(scores.shape[1])]
    return {
        "top1": top_k_accuracy(y_true, scores, 1),
        "top5": top_k_accuracy(y_true, scores, 5),
        "mean_class_accuracy": _nanmean(per_class),
        "num_samples": int(len(y_true)),
        "per_class_top1": dict(zip(names, per_class)),
    }


# --------------------------------------------------------------------------------------------------
# Segmentation
# --------------------------------------------------------------------------------------------------


def confusion_matrix(labels, predictions, num_classes, void_index=VOID):
    """Pixel confusion matrix [C, C] (rows = truth, columns = prediction), void pixels ignored.

    Matrices of disjoint batches add up, so a data set can be scored batch by batch. Counted with
    np.bincount, about 6x faster than sklearn's `confusion_matrix` at 1e7 pixels (VOC val: ~1e8).

    Args:
        labels: int array [N, H, W] (any shape) of classes 0..C-1 or `void_index`.
        predictions: int array of the same shape, classes 0..C-1 (its values at void pixels are unused).
        num_classes: C.
        void_index: label to ignore, or None when every pixel counts.

    Returns:
        int64 array [C, C].

    Raises:
        ValueError: shapes differ, or a non-void label or a prediction lies outside 0..C-1.
    """
    if int(num_classes) != num_classes or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
    num_classes = int(num_classes)
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels and predictions must have the same shape, "
                         f"got {labels.shape} and {predictions.shape}.")
    for name, array in (("labels", labels), ("predictions", predictions)):
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.bool_)):
            raise ValueError(f"{name} must be an integer array, got dtype {array.dtype}.")
    labels = labels.reshape(-1).astype(np.int64)
    predictions = predictions.reshape(-1).astype(np.int64)
    if void_index is not None:
        valid = labels != void_index
        labels, predictions = labels[valid], predictions[valid]
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        raise ValueError(f"labels must lie in 0..{num_classes - 1} or be the void index {void_index}, "
                         f"got the value {labels[bad][0]}.")
    bad = (predictions < 0) | (predictions >= num_classes)
    if bad.any():
        raise ValueError(f"predictions must lie in 0..{num_classes - 1}, got the value {predictions[bad][0]}.")
    counts = np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def _check_confusion(cm):
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"The confusion matrix must be square [C, C], got shape {cm.shape}.")
    return cm


def iou_from_confusion(cm):
    """Per-class IoU = TP / (TP + FP + FN); NaN for a class absent from both truth and prediction.

    Written here because it reads an additive confusion matrix, which sklearn's `jaccard_score`
    (it takes the pixels themselves) cannot do when a test set is scored batch by batch.
    """
    cm = _check_confusion(cm)
    tp = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(cm):
    """mIoU, the standard VOC segmentation measure: mean IoU over classes present in truth or prediction."""
    return _nanmean(iou_from_confusion(cm))


def pixel_accuracy(cm):
    """Fraction of non-void pixels labelled correctly; NaN for an empty matrix."""
    cm = _check_confusion(cm)
    total = cm.sum()
    return float(np.trace(cm) / total) if total > 0 else float("nan")


def mean_class_accuracy(cm):
    """Per-class pixel recall averaged over classes present in the truth (FCN's 'mean accuracy').

    sklearn's `balanced_accuracy_score` is the same number but needs the pixels, not the matrix.
    """
    cm = _check_confusion(cm)
    rows = cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _nanmean(np.where(rows > 0, np.diag(cm) / rows, np.nan))


def segmentation_report(cm, class_names=None):
    """All segmentation measures in one JSON-friendly dict.

    Returns:
        {"mIoU", "pixel_accuracy", "mean_class_accuracy": float, "num_pixels": int,
         "iou": {class name: IoU (NaN when absent from truth and prediction)}}.
    """
    cm = _check_confusion(cm)
    names = _class_names(class_names, cm.shape[0])
    iou = iou_from_confusion(cm)
    return {
        "mIoU": _nanmean(iou),
        "pixel_accuracy": pixel_accuracy(cm),
        "mean_class_accuracy": mean_class_accuracy(cm),
        "num_pixels": int(cm.sum()),
        "iou": {name: float(value) for name, value in zip(names, iou)},
    }
