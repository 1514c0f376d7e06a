"""transfer.metrics (what the package adds to scikit-learn) and the Keras loss and metric used instead
of hand-written ones, checked against numpy on void-heavy masks."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from data.labelled.masks import VOID
from transfer import metrics as tm


# -- classification --------------------------------------------------------------------------------


def _multilabel(seed=0, n=64, c=7):
    """Labels with two all-negative classes (0 and 2), a one-positive class (1) and tied scores."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.3).astype(int)
    y[:, [0, 1, 2]] = 0
    y[5, 1] = 1
    scores = np.round(rng.random((n, c)) * 0.6 + 0.4 * y * rng.random((n, c)), 1)
    return y, scores


def test_classes_without_positives_get_nan_and_are_left_out_of_map_without_warnings():
    y, scores = _multilabel()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn warns on a class without positives
        ap = tm.average_precision(y, scores)
        mean_ap = tm.mean_average_precision(y, scores)
    assert ap.shape == (7,) and ap.dtype == np.float64
    assert np.isnan(ap[[0, 2]]).all() and not np.isnan(ap[[1, 3, 4, 5, 6]]).any()
    assert mean_ap == pytest.approx(ap[[1, 3, 4, 5, 6]].mean(), rel=1e-12)
    assert 0.0 < mean_ap < 1.0


def test_average_precision_by_hand():
    # Thresholds 0.5 (1 TP, 1 FP: P = 1/2, R = 1/2) and 0.3 (P = 2/3, R = 1): AP = 1/4 + 1/3.
    assert tm.average_precision([1, 0, 1, 0], [0.5, 0.5, 0.3, 0.1])[0] == pytest.approx(0.25 + 1 / 3)
    assert tm.average_precision([1, 0, 0], [0.9, 0.2, 0.1])[0] == 1.0
    # Column 1: the positive is ranked last of three, P = 1/3 at R = 1.
    ap = tm.average_precision([[1, 0], [0, 0], [1, 1]], [[0.9, 0.8], [0.1, 0.5], [0.8, 0.2]])
    np.testing.assert_allclose(ap, [1.0, 1 / 3])


def test_mean_average_precision_is_nan_without_any_positive():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(tm.mean_average_precision(np.zeros((4, 3), int), np.full((4, 3), 0.5)))


def test_thresholded_measures_by_hand():
    y = np.array([[0, 0, 0], [0, 0, 0], [1, 0, 1], [1, 1, 0]])
    scores = np.array([[0.1, 0.1, 0.1],   # nothing true, nothing predicted: exact, F1 = 1
                       [0.9, 0.1, 0.1],   # nothing true, one predicted: F1 = 0
                       [0.1, 0.1, 0.1],   # two true, none predicted: F1 = 0
                       [0.9, 0.4, 0.1]])  # {0, 1} true, {0} predicted (or {0, 1} at 0.3)
    assert tm.exact_match_accuracy(y, scores) == 0.25
    assert tm.per_label_accuracy(y, scores) == pytest.approx(8 / 12)
    assert tm.sample_f1(y, scores) == pytest.approx((1.0 + 0.0 + 0.0 + 2 / 3) / 4)
    assert tm.exact_match_accuracy(y, scores, threshold=0.3) == 0.5
    assert tm.sample_f1(y, scores, threshold=0.3) == pytest.approx(2 / 4)


def test_single_class_sample_f1_is_the_exact_match():
    y, scores = [1, 0, 1, 0], [0.9, 0.2, 0.1, 0.7]
    assert tm.sample_f1(y, scores) == 0.5 == tm.exact_match_accuracy(y, scores)
    assert tm.per_label_accuracy(y, scores) == 0.5


def test_classification_report():
    y, scores = _multilabel(c=4)
    report = tm.classification_report(y, scores, class_names=["aeroplane", "bicycle", "bird", "boat"], threshold=0.4)
    assert list(report) == ["mAP", "exact_match_accuracy", "per_label_accuracy", "sample_f1", "threshold",
                            "num_samples", "ap"]
    assert report["mAP"] == tm.mean_average_precision(y, scores)
    assert report["exact_match_accuracy"] == tm.exact_match_accuracy(y, scores, 0.4)
    assert report["per_label_accuracy"] == tm.per_label_accuracy(y, scores, 0.4)
    assert report["sample_f1"] == tm.sample_f1(y, scores, 0.4)
    assert (report["threshold"], report["num_samples"]) == (0.4, 64)
    assert list(report["ap"]) == ["aeroplane", "bicycle", "bird", "boat"]
    assert np.isnan(report["ap"]["aeroplane"]) and report["ap"]["boat"] == tm.average_precision(y, scores)[3]
    assert list(tm.classification_report(y, scores)["ap"]) == ["class_0", "class_1", "class_2", "class_3"]
    with pytest.raises(ValueError, match="one name per class"):
        tm.classification_report(y, scores, class_names=["a"])


@pytest.mark.parametrize("function", [tm.average_precision, tm.sample_f1, tm.classification_report])
def test_classification_input_errors_are_one_sentence(function):
    with pytest.raises(ValueError, match="only 0 and 1, got the value 2"):
        function([[0, 2]], [[0.1, 0.2]])
    with pytest.raises(ValueError, match=r"same shape, got \(2, 3\) and \(2, 2\)"):
        function(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="finite, got the value nan"):
        function([[0, 1]], [[0.1, np.nan]])
    with pytest.raises(ValueError, match="at least one sample"):
        function(np.zeros((0, 3)), np.zeros((0, 3)))


# -- segmentation (numpy) --------------------------------------------------------------------------


def test_confusion_matrix_iou_and_accuracies_by_hand():
    labels = np.array([[0, 0, 1, VOID], [1, 2, 2, VOID]])
    predictions = np.array([[0, 1, 1, 3], [1, 2, 0, 3]])  # class 3 only at void pixels
    cm = tm.confusion_matrix(labels, predictions, num_classes=4)
    np.testing.assert_array_equal(cm, [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
    assert cm.dtype == np.int64
    # IoU: 0 -> 1 / (2 + 2 - 1), 1 -> 2 / (2 + 3 - 2), 2 -> 1 / (2 + 1 - 1), 3 absent -> NaN.
    iou = tm.iou_from_confusion(cm)
    np.testing.assert_allclose(iou[:3], [1 / 3, 2 / 3, 1 / 2])
    assert np.isnan(iou[3])
    assert tm.mean_iou(cm) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert tm.pixel_accuracy(cm) == pytest.approx(4 / 6)
    assert tm.mean_class_accuracy(cm) == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    every_pixel = tm.confusion_matrix(np.where(labels == VOID, 3, labels), predictions, 4, void_index=None)
    assert every_pixel[3, 3] == 2 and every_pixel.sum() == 8


def _void_heavy_masks(seed, shape, num_classes, void_fraction):
    """Labels in 0..C-1 with `void_fraction` of the pixels void, and random probabilities [..., C]."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, size=shape)
    labels[rng.random(shape) < void_fraction] = VOID
    logits = (rng.normal(size=shape + (num_classes,)) * 2).astype(np.float32)
    logits[..., 0] += 1.0  # class 0 is predicted more often, so IoUs differ between classes
    return labels, logits


def test_confusion_matrices_add_over_batches():
    labels, logits = _void_heavy_masks(1, (6, 8, 9), 5, 0.8)
    predictions = logits.argmax(-1)
    whole = tm.confusion_matrix(labels, predictions, 5)
    parts = sum(tm.confusion_matrix(labels[i:i + 2], predictions[i:i + 2], 5) for i in range(0, 6, 2))
    np.testing.assert_array_equal(whole, parts)
    assert whole.sum() == (labels != VOID).sum() and 0 < whole.sum() < 0.3 * labels.size
    assert tm.mean_iou(parts) == tm.mean_iou(whole)


def test_segmentation_report():
    labels, logits = _void_heavy_masks(2, (3, 8, 8), 4, 0.7)
    cm = tm.confusion_matrix(labels, logits.argmax(-1), 4)
    report = tm.segmentation_report(cm, class_names=list("abcd"))
    assert list(report) == ["mIoU", "pixel_accuracy", "mean_class_accuracy", "num_pixels", "iou"]
    assert report["mIoU"] == tm.mean_iou(cm) and report["num_pixels"] == int((labels != VOID).sum())
    assert report["pixel_accuracy"] == tm.pixel_accuracy(cm)
    assert report["mean_class_accuracy"] == tm.mean_class_accuracy(cm)
    assert report["iou"] == dict(zip("abcd", tm.iou_from_confusion(cm).tolist()))


def test_empty_confusion_gives_nan_without_warnings():
    cm = tm.confusion_matrix(np.full((1, 2, 2), VOID), np.zeros((1, 2, 2), int), 3)
    assert cm.sum() == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = tm.segmentation_report(cm)
    assert np.isnan([report["mIoU"], report["pixel_accuracy"], report["mean_class_accuracy"]]).all()


def test_confusion_matrix_errors_quote_the_value():
    labels = np.array([[[0, 1], [7, VOID]]])
    with pytest.raises(ValueError, match="got the value 7"):
        tm.confusion_matrix(labels, np.zeros_like(labels), 6)
    with pytest.raises(ValueError, match="got the value -1"):
        tm.confusion_matrix(np.zeros((1, 2, 2), int), np.full((1, 2, 2), -1), 6)
    # An out-of-range prediction at a void pixel is ignored like everything else there.
    assert tm.confusion_matrix(np.array([[0, VOID]]), np.array([[0, 99]]), 6).sum() == 1
    with pytest.raises(ValueError, match=r"\(1, 2\) and \(2, 1\)"):
        tm.confusion_matrix(np.zeros((1, 2), int), np.zeros((2, 1), int), 6)
    with pytest.raises(ValueError, match="dtype float"):
        tm.confusion_matrix(np.zeros((1, 2)), np.zeros((1, 2), int), 6)
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        tm.iou_from_confusion(np.zeros((2, 3)))


# -- Keras' loss and metric against numpy on void-heavy masks --------------------------------------


def _softmax(logits):
    exp = np.exp(logits - logits.max(-1, keepdims=True))
    return exp / exp.sum(-1, keepdims=True)


def _numpy_cross_entropy(labels, probabilities, weights=None):
    """Sum over non-void pixels of weight * -log p(label), divided by the number of non-void pixels."""
    keep = labels != VOID
    terms = -np.log(probabilities.astype(np.float64)[keep, labels[keep]])
    if weights is not None:
        terms = terms * weights[keep]
    return terms.sum() / keep.sum()


@pytest.mark.parametrize("void_fraction", [0.7, 0.95])
@pytest.mark.parametrize("seed", [0, 1])
def test_keras_ignore_class_loss_is_the_mean_cross_entropy_over_non_void_pixels(void_fraction, seed):
    labels, logits = _void_heavy_masks(seed, (4, 12, 10), 6, void_fraction)
    probabilities = _softmax(logits)
    expected = _numpy_cross_entropy(labels, probabilities)
    assert expected > 0 and (labels == VOID).mean() > void_fraction - 0.05
    loss = keras.losses.SparseCategoricalCrossentropy(ignore_class=VOID)
    assert float(loss(labels, probabilities)) == pytest.approx(expected, rel=1e-5)
    assert float(loss(labels[..., None], probabilities)) == pytest.approx(expected, rel=1e-5)
    from_logits = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=VOID)
    assert float(from_logits(labels, logits)) == pytest.approx(expected, rel=1e-5)
    # Per-pixel weights scale each term; the denominator stays the number of non-void pixels.
    weights = np.random.default_rng(seed + 10).uniform(0.0, 3.0, size=labels.shape).astype(np.float32)
    assert float(loss(labels, probabilities, sample_weight=weights)) == pytest.approx(
        _numpy_cross_entropy(labels, probabilities, weights), rel=1e-5)


@pytest.mark.parametrize("from_logits", [False, True])
def test_keras_loss_gradient_is_zero_at_void_pixels(from_logits):
    labels, logits = _void_heavy_masks(3, (3, 8, 8), 5, 0.8)
    void = labels == VOID
    y_pred = logits if from_logits else _softmax(logits)
    altered = y_pred.copy()
    altered[void] = np.random.default_rng(4).uniform(0, 50, size=altered[void].shape)
    altered[0, 0, 0] = np.nan  # even a NaN at a void pixel stays out
    labels[0, 0, 0] = VOID
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits, ignore_class=VOID)

    values, gradients = [], []
    for prediction in (y_pred, altered):
        prediction = tf.Variable(prediction)
        with tf.GradientTape() as tape:
            value = loss(labels, prediction)
        values.append(float(value))
        gradients.append(tape.gradient(value, prediction).numpy())
    assert values[0] == pytest.approx(_numpy_cross_entropy(labels, _softmax(logits)), rel=1e-5)
    assert values[0] == values[1]
    np.testing.assert_array_equal(gradients[0], gradients[1])
    assert np.all(gradients[0][void] == 0) and np.all(np.isfinite(gradients[0]))
    assert np.all(np.abs(gradients[0][~void]).sum(-1) > 0)


def test_keras_loss_and_metric_on_an_all_void_batch():
    prediction = tf.Variable(_softmax(np.random.default_rng(5).normal(size=(2, 3, 3, 4))).astype(np.float32))
    labels = np.full((2, 3, 3), VOID)
    with tf.GradientTape() as tape:
        value = keras.losses.SparseCategoricalCrossentropy(ignore_class=VOID)(labels, prediction)
    assert float(value) == 0.0
    np.testing.assert_array_equal(tape.gradient(value, prediction).numpy(), 0.0)
    # Nothing seen yet: Keras says 0 where the numpy report says NaN (no class to average over).
    metric = keras.metrics.MeanIoU(num_classes=4, ignore_class=VOID, sparse_y_pred=False)
    metric.update_state(labels, prediction.numpy())
    assert float(metric.result()) == 0.0
    assert np.isnan(tm.mean_iou(tm.confusion_matrix(labels, prediction.numpy().argmax(-1), 4)))


@pytest.mark.parametrize("void_fraction", [0.7, 0.95])
def test_keras_mean_iou_streamed_over_batches_equals_the_summed_confusion_matrix(void_fraction):
    num_classes = 6
    labels, logits = _void_heavy_masks(6, (10, 16, 12), num_classes, void_fraction)
    labels[4] = VOID  # one whole batch of void
    probabilities = _softmax(logits)
    metric = keras.metrics.MeanIoU(num_classes=num_classes, ignore_class=VOID, sparse_y_pred=False)
    cm = np.zeros((num_classes, num_classes), np.int64)
    for start in range(0, 10, 4):  # batches of 4, 4 and 2
        batch = slice(start, start + 4)
        metric.update_state(labels[batch], probabilities[batch])
        cm += tm.confusion_matrix(labels[batch], probabilities[batch].argmax(-1), num_classes)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(metric.total_cm), cm)
    assert float(metric.result()) == pytest.approx(tm.mean_iou(cm), rel=1e-6)
    assert tm.mean_iou(cm) != pytest.approx(tm.pixel_accuracy(cm))


@pytest.mark.parametrize("jit_compile", [False, True])
def test_keras_mean_iou_inside_model_evaluate(jit_compile):
    num_classes = 5
    labels, logits = _void_heavy_masks(7, (9, 8, 8), num_classes, 0.9)
    inputs = keras.Input((8, 8, num_classes))
    model = keras.Model(inputs, keras.layers.Activation("softmax")(inputs))
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(ignore_class=VOID),
                  metrics=[keras.metrics.MeanIoU(num_classes, ignore_class=VOID, sparse_y_pred=False, name="mean_iou")],
                  jit_compile=jit_compile)
    logs = model.evaluate(logits, labels, batch_size=4, verbose=0, return_dict=True)  # 3 batches, last short
    expected = tm.mean_iou(tm.confusion_matrix(labels, logits.argmax(-1), num_classes))
    assert logs["mean_iou"] == pytest.approx(expected, rel=1e-6)
    # The loss: each batch's cross-entropy over its non-void pixels, averaged over the batches by their images.
    per_batch = [_numpy_cross_entropy(labels[i:i + 4], _softmax(logits[i:i + 4])) for i in (0, 4, 8)]
    assert logs["loss"] == pytest.approx(np.average(per_batch, weights=[4, 4, 1]), rel=1e-5)
