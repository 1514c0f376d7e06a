"""Metrics and the masked loss used to score transferred colorization features.

Two downstream tasks measure how good the pretext features are:

* Pascal VOC multi-label classification (20 classes), scored by mAP: the mean over classes of the
  average precision, computed exactly as scikit-learn's `average_precision_score` does, plus a few
  thresholded measures (exact match, per-label accuracy, sample F1).
* Pascal VOC semantic segmentation (21 classes, 255 = void), scored by mIoU from a confusion matrix
  that ignores void pixels; `StreamingConfusionMatrix` accumulates that matrix inside Keras, and
  `masked_sparse_categorical_crossentropy` is the training loss that ignores void pixels too.

The final metrics are numpy (float64, exact); the loss and the streaming metric are TensorFlow ops
that run under `tf.function` and XLA.
"""

import keras
import numpy as np
import tensorflow as tf

__all__ = [
    "average_precision",
    "mean_average_precision",
    "exact_match_accuracy",
    "per_label_accuracy",
    "sample_f1",
    "classification_report",
    "confusion_matrix",
    "iou_from_confusion",
    "mean_iou",
    "pixel_accuracy",
    "mean_class_accuracy",
    "segmentation_report",
    "StreamingConfusionMatrix",
    "MaskedSparseCategoricalCrossentropy",
    "masked_sparse_categorical_crossentropy",
]

VOID_INDEX = 255


# --------------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------------


def _check_multilabel(y_true, scores):
    """Validated float64 copies of y_true {0,1} and scores, both [N, C] (1-D input means C = 1)."""
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
    return y_true.astype(np.float64), scores


def _binary_average_precision(y, s):
    """AP of one class: sum over distinct thresholds (high to low) of (R_n - R_{n-1}) * P_n.

    Tied scores form one threshold, as in scikit-learn's `_binary_clf_curve`; NaN without positives.
    """
    order = np.argsort(s, kind="mergesort")[::-1]
    s, y = s[order], y[order]
    threshold_ends = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tps = np.cumsum(y)[threshold_ends]
    if tps[-1] == 0:
        return np.nan
    fps = 1 + threshold_ends - tps
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def average_precision(y_true, scores):
    """Per-class average precision, the area under each class's precision-recall curve.

    Matches `sklearn.metrics.average_precision_score(..., average=None)` (ties included), except
    that a class without positives gets NaN rather than scikit-learn's 0, so that `nanmean` can
    leave it out of mAP instead of counting it as a failure.

    Args:
        y_true: {0, 1} array [N, C].
        scores: real-valued confidences [N, C] (e.g. sigmoid outputs in [0, 1]); higher = more likely.

    Returns:
        float64 array [C].
    """
    y_true, scores = _check_multilabel(y_true, scores)
    return np.array([_binary_average_precision(y_true[:, c], scores[:, c]) for c in range(y_true.shape[1])])


def _nanmean(values):
    """Mean over the non-NaN entries, NaN (without a warning) when there are none."""
    values = np.asarray(values, dtype=np.float64)
    finite = ~np.isnan(values)
    return float(values[finite].mean()) if finite.any() else float("nan")


def mean_average_precision(y_true, scores):
    """mAP, the standard VOC classification measure: the mean AP over classes that have positives."""
    return _nanmean(average_precision(y_true, scores))


def _binarize(y_true, scores, threshold):
    y_true, scores = _check_multilabel(y_true, scores)
    return y_true.astype(bool), scores >= threshold


def exact_match_accuracy(y_true, scores, threshold=0.5):
    """Fraction of images whose whole label set is predicted exactly (a label is on if score >= threshold).

    Equals scikit-learn's `accuracy_score` on multilabel indicator matrices (subset accuracy).
    """
    truth, predicted = _binarize(y_true, scores, threshold)
    return float(np.mean(np.all(truth == predicted, axis=1)))


def per_label_accuracy(y_true, scores, threshold=0.5):
    """Fraction of the N * C individual yes/no decisions that are right (1 - Hamming loss)."""
    truth, predicted = _binarize(y_true, scores, threshold)
    return float(np.mean(truth == predicted))


def sample_f1(y_true, scores, threshold=0.5):
    """F1 of each image's predicted label set against its true one, averaged over images.

    Per image F1 = 2|T & P| / (|T| + |P|). Convention: an image with no true and no predicted labels
    scores 1.0 (nothing to find, nothing claimed), as `f1_score(average='samples', zero_division=1)`
    does; an image where only one of the two sets is empty scores 0.
    """
    truth, predicted = _binarize(y_true, scores, threshold)
    overlap = np.sum(truth & predicted, axis=1)
    sizes = np.sum(truth, axis=1) + np.sum(predicted, axis=1)
    per_image = np.where(sizes == 0, 1.0, 2.0 * overlap / np.maximum(sizes, 1))
    return float(np.mean(per_image))


def _class_names(class_names, count):
    if class_names is None:
        return [f"class_{index}" for index in range(count)]
    class_names = [str(name) for name in class_names]
    if len(class_names) != count:
        raise ValueError(f"class_names must have one name per class ({count}), got {len(class_names)} names.")
    return class_names


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


# --------------------------------------------------------------------------------------------------
# Segmentation (numpy)
# --------------------------------------------------------------------------------------------------


def confusion_matrix(labels, predictions, num_classes, void_index=VOID_INDEX):
    """Pixel confusion matrix [C, C] (rows = truth, columns = prediction), void pixels ignored.

    Matrices of disjoint batches add up, so a data set can be scored batch by batch.

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
        raise ValueError(f"labels and predictions must have the same shape, got {labels.shape} and {predictions.shape}.")
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
    """Per-class IoU = TP / (TP + FP + FN); NaN for a class absent from both truth and prediction."""
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
    """Per-class pixel recall averaged over classes present in the truth (FCN's 'mean accuracy')."""
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


# --------------------------------------------------------------------------------------------------
# Segmentation (TensorFlow / Keras)
# --------------------------------------------------------------------------------------------------


def _dense_labels(y_true, y_pred):
    """y_true as int32 [B, H, W]: drops a trailing size-1 axis when it has y_pred's rank."""
    y_true = tf.convert_to_tensor(y_true)
    if y_true.shape.rank is not None and y_pred.shape.rank is not None and y_true.shape.rank == y_pred.shape.rank:
        y_true = tf.squeeze(y_true, axis=-1)
    return tf.cast(y_true, tf.int32)


def _valid_mask(labels, void_index):
    if void_index is None:
        return tf.ones_like(labels, dtype=tf.bool)
    return tf.not_equal(labels, void_index)


@keras.saving.register_keras_serializable(package="transfer")
def _per_pixel(sample_weight, labels, dtype):
    """Per-image ([B]), per-pixel ([B,H,W]) or [B,H,W,1] sample weights, broadcast to the labels' shape."""
    sample_weight = tf.cast(tf.convert_to_tensor(sample_weight), dtype)
    if sample_weight.shape.rank is not None:
        if sample_weight.shape.rank == labels.shape.rank + 1 and sample_weight.shape[-1] == 1:
            sample_weight = tf.squeeze(sample_weight, axis=-1)
        for _ in range(labels.shape.rank - sample_weight.shape.rank):
            sample_weight = tf.expand_dims(sample_weight, axis=-1)
    return tf.broadcast_to(sample_weight, tf.shape(labels))


class StreamingConfusionMatrix(keras.metrics.Metric):
    """Accumulates the pixel confusion matrix over batches; `result()` is the mIoU so far.

    Keras' own `MeanIoU` cannot skip a void label of 255 with 21 classes and counts in float32,
    which stops being exact past 2^24 pixels (VOC val has ~2.7e8); this metric masks void pixels
    and counts in float64 (exact to 2^53). Use `confusion()` to get the matrix for
    `segmentation_report`.

    Args:
        num_classes: C; y_pred's last axis must have this size.
        void_index: label to ignore, or None.
        name, dtype: as for any Keras metric (dtype is that of `result()`).

    update_state(y_true, y_pred, sample_weight=None): y_true int [B, H, W] (or [B, H, W, 1]) with
    void pixels; y_pred [B, H, W, C] probabilities or logits (argmax is taken); optional weights
    broadcastable to [B, H, W] scale each pixel's count. A non-void label outside 0..C-1 fails an
    assertion in eager and graph mode; under XLA (where assertions are dropped) it is skipped.
    """

    def __init__(self, num_classes, void_index=VOID_INDEX, name="mean_iou", dtype=None):
        super().__init__(name=name, dtype=dtype)
        if int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
        self.num_classes = int(num_classes)
        self.void_index = None if void_index is None else int(void_index)
        self.matrix = self.add_variable(shape=(self.num_classes, self.num_classes), initializer="zeros",
                                        dtype="float64", name="confusion_matrix")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = tf.convert_to_tensor(y_pred)
        classes = y_pred.shape[-1] if y_pred.shape.rank is not None else None
        if classes is not None and classes != self.num_classes:
            raise ValueError(f"y_pred's last axis must have num_classes = {self.num_classes} entries, got {classes}.")
        labels = _dense_labels(y_true, y_pred)
        predictions = tf.argmax(y_pred, axis=-1, output_type=tf.int32)
        valid = _valid_mask(labels, self.void_index)
        in_range = (labels >= 0) & (labels < self.num_classes)
        stray = valid & ~in_range
        # A sentinel element keeps argmax defined on an empty batch.
        flat_labels = tf.concat([tf.reshape(labels, [-1]), [0]], axis=0)
        flat_stray = tf.concat([tf.reshape(stray, [-1]), [False]], axis=0)
        first_stray = tf.gather(flat_labels, tf.argmax(tf.cast(flat_stray, tf.int32), output_type=tf.int32))
        check = tf.debugging.Assert(
            ~tf.reduce_any(stray),
            [f"y_true must lie in 0..{self.num_classes - 1} or be the void index {self.void_index}, got the value",
             first_stray])
        with tf.control_dependencies([check]):
            keep = tf.reshape(valid & in_range, [-1])
        weights = tf.cast(keep, tf.float64)
        if sample_weight is not None:
            weights *= tf.reshape(_per_pixel(sample_weight, labels, tf.float64), [-1])
        cells = tf.where(keep, tf.reshape(labels * self.num_classes + predictions, [-1]), 0)
        counts = tf.math.unsorted_segment_sum(weights, cells, self.num_classes * self.num_classes)
        self.matrix.assign_add(tf.reshape(counts, [self.num_classes, self.num_classes]))

    def result(self):
        """mIoU over classes present in truth or prediction; 0 before any non-void pixel is seen."""
        matrix = tf.convert_to_tensor(self.matrix)
        tp = tf.linalg.diag_part(matrix)
        union = tf.reduce_sum(matrix, axis=0) + tf.reduce_sum(matrix, axis=1) - tp
        present = tf.cast(union > 0, tf.float64)
        iou = tf.math.divide_no_nan(tp, union)
        return tf.cast(tf.math.divide_no_nan(tf.reduce_sum(iou), tf.reduce_sum(present)), self.dtype)

    def confusion(self):
        """The accumulated matrix [C, C] (rows = truth) as a float64 numpy array."""
        return np.array(keras.ops.convert_to_numpy(self.matrix), dtype=np.float64)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "num_classes": self.num_classes,
                "void_index": self.void_index}


@keras.saving.register_keras_serializable(package="transfer")
class MaskedSparseCategoricalCrossentropy(keras.losses.Loss):
    """Mean pixel cross-entropy over non-void pixels; void pixels add nothing to sum or count.

    The whole batch's valid pixels are pooled (an image with many labelled pixels weighs more),
    as in FCN-style VOC training. Void pixels' predictions are replaced by a constant before any
    arithmetic, so their values (even NaN or inf) change neither the loss nor any gradient, which
    is exactly zero for them. A batch with no valid pixel has loss 0, not NaN.

    Args:
        void_index: label to ignore, or None.
        from_logits: y_pred holds logits (softmax applied inside, stably) rather than probabilities.
        epsilon: probabilities are clipped to [epsilon, 1 - epsilon] before the log.
        name: loss name shown in Keras logs.

    Call: loss(y_true int [B, H, W] or [B, H, W, 1], y_pred [B, H, W, C], sample_weight=None) ->
    float32 scalar. Optional per-pixel weights (broadcastable to [B, H, W]) multiply each pixel's
    term; the denominator stays the number of valid pixels, as in Keras' "sum_over_batch_size".
    Non-void labels must lie in 0..C-1.
    """

    def __init__(self, void_index=VOID_INDEX, from_logits=False, epsilon=1e-7,
                 name="masked_sparse_categorical_crossentropy"):
        super().__init__(name=name, reduction="sum_over_batch_size", dtype="float32")
        self.void_index = None if void_index is None else int(void_index)
        self.from_logits = bool(from_logits)
        self.epsilon = float(epsilon)
        if not 0.0 < self.epsilon < 0.5:
            raise ValueError(f"epsilon must lie in (0, 0.5), got {epsilon!r}.")

    def __call__(self, y_true, y_pred, sample_weight=None):
        with tf.name_scope(self.name):
            y_pred = tf.cast(tf.convert_to_tensor(y_pred), tf.float32)
            labels = _dense_labels(y_true, y_pred)
            valid = _valid_mask(labels, self.void_index)
            safe_labels = tf.where(valid, labels, 0)
            # Constant stand-in for void pixels: their inputs never reach an op, hence zero gradient.
            safe_pred = tf.where(valid[..., None], y_pred, tf.ones_like(y_pred))
            if self.from_logits:
                per_pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe_labels, logits=safe_pred)
            else:
                picked = tf.gather(safe_pred, safe_labels, axis=-1, batch_dims=safe_labels.shape.rank)
                per_pixel = -tf.math.log(tf.clip_by_value(picked, self.epsilon, 1.0 - self.epsilon))
            weights = tf.cast(valid, tf.float32)
            if sample_weight is not None:
                weights = tf.where(valid, _per_pixel(sample_weight, labels, tf.float32), 0.0)
            total = tf.reduce_sum(tf.where(valid, per_pixel * weights, 0.0))
            count = tf.reduce_sum(tf.cast(valid, tf.float32))
            return tf.math.divide_no_nan(total, count)

    def call(self, y_true, y_pred):
        return self(y_true, y_pred)

    def get_config(self):
        return {"name": self.name, "void_index": self.void_index, "from_logits": self.from_logits,
                "epsilon": self.epsilon}


def masked_sparse_categorical_crossentropy(void_index=VOID_INDEX, from_logits=False, epsilon=1e-7):
    """Keras loss `loss(y_true [B,H,W] int, y_pred [B,H,W,C]) -> scalar`, the mean CE over non-void pixels.

    Returns a serializable `MaskedSparseCategoricalCrossentropy` (pass it to `model.compile(loss=...)`
    or call it directly); see that class for the exact semantics.
    """
    return MaskedSparseCategoricalCrossentropy(void_index=void_index, from_logits=from_logits, epsilon=epsilon)
