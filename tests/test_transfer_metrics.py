"""transfer.metrics against scikit-learn and hand computations."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn import metrics as skm

from transfer import metrics as tm

VOID = 255


# -- classification --------------------------------------------------------------------------------


def _multilabel(seed=0, n=64, c=7):
    """Labels with an all-negative class (column 0) and coarse scores full of ties."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.3).astype(int)
    y[:, 0] = 0
    y[:, 1] = 0
    y[5, 1] = 1  # a class with one positive
    scores = np.round(rng.random((n, c)) * 0.6 + 0.4 * y * rng.random((n, c)), 1)  # ties everywhere
    return y, scores


def test_average_precision_matches_sklearn_with_ties_and_an_empty_class():
    y, scores = _multilabel()
    ap = tm.average_precision(y, scores)
    assert ap.shape == (y.shape[1],) and np.isnan(ap[0]) and not np.isnan(ap[1:]).any()
    np.testing.assert_allclose(ap[1:], skm.average_precision_score(y[:, 1:], scores[:, 1:], average=None),
                               rtol=1e-12)
    assert tm.mean_average_precision(y, scores) == pytest.approx(
        skm.average_precision_score(y[:, 1:], scores[:, 1:], average="macro"), rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_average_precision_matches_sklearn_on_random_data(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random((40, 20)) < 0.2).astype(int)
    y[0] = 1  # every class has a positive
    scores = rng.integers(0, 6, size=y.shape) / 5.0
    np.testing.assert_allclose(tm.average_precision(y, scores),
                               skm.average_precision_score(y, scores, average=None), rtol=1e-12)


def test_average_precision_by_hand_with_a_tie_across_classes():
    # Thresholds 0.5 (1 TP, 1 FP: P = 1/2, R = 1/2) and 0.3 (P = 2/3, R = 1): AP = 1/4 + 1/3.
    ap = tm.average_precision([1, 0, 1, 0], [0.5, 0.5, 0.3, 0.1])
    assert ap[0] == pytest.approx(0.25 + 1 / 3)
    assert tm.average_precision([1, 0, 0], [0.9, 0.2, 0.1])[0] == 1.0


def test_mean_average_precision_is_nan_without_any_positive():
    assert np.isnan(tm.mean_average_precision(np.zeros((4, 3), int), np.full((4, 3), 0.5)))


def _thresholded_case():
    y, scores = _multilabel(seed=3, n=30, c=5)
    y[0], scores[0] = 0, 0.1  # all-negative row, nothing predicted: F1 = 1 by convention
    y[1], scores[1] = 0, 0.9  # all-negative row, everything predicted: F1 = 0
    y[2], scores[2] = [1, 0, 1, 0, 0], 0.2  # labels present, nothing predicted: F1 = 0
    return y, scores


@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_thresholded_measures_match_sklearn(threshold):
    y, scores = _thresholded_case()
    predicted = (scores >= threshold).astype(int)
    assert tm.exact_match_accuracy(y, scores, threshold) == pytest.approx(skm.accuracy_score(y, predicted))
    assert tm.per_label_accuracy(y, scores, threshold) == pytest.approx(1 - skm.hamming_loss(y, predicted))
    assert tm.sample_f1(y, scores, threshold) == pytest.approx(
        skm.f1_score(y, predicted, average="samples", zero_division=1))


def test_sample_f1_conventions_by_hand():
    y = np.array([[0, 0], [0, 0], [1, 0], [1, 1]])
    scores = np.array([[0.1, 0.1], [0.9, 0.1], [0.1, 0.1], [0.9, 0.1]])
    assert tm.sample_f1(y, scores) == pytest.approx((1.0 + 0.0 + 0.0 + 2 / 3) / 4)


def test_classification_report():
    y, scores = _multilabel(c=3)
    report = tm.classification_report(y, scores, class_names=["aeroplane", "bicycle", "bird"])
    assert report["mAP"] == pytest.approx(tm.mean_average_precision(y, scores))
    assert np.isnan(report["ap"]["aeroplane"]) and list(report["ap"]) == ["aeroplane", "bicycle", "bird"]
    assert report["sample_f1"] == tm.sample_f1(y, scores) and report["num_samples"] == len(y)
    assert set(report) >= {"exact_match_accuracy", "per_label_accuracy", "threshold"}
    assert list(tm.classification_report(y, scores)["ap"]) == ["class_0", "class_1", "class_2"]
    with pytest.raises(ValueError, match="one name per class"):
        tm.classification_report(y, scores, class_names=["a"])


def test_classification_input_errors_quote_the_value():
    with pytest.raises(ValueError, match="got the value 2"):
        tm.average_precision([[0, 2]], [[0.1, 0.2]])
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(2, 2\)"):
        tm.sample_f1(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="nan"):
        tm.average_precision([[0, 1]], [[0.1, np.nan]])


# -- segmentation (numpy) --------------------------------------------------------------------------


def _segmentation_case(seed=0, shape=(4, 9, 11), num_classes=6):
    """Labels in 0..4 with void patches; predictions in 0..4 except class 5 at void pixels only."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes - 1, size=shape)
    predictions = np.where(rng.random(shape) < 0.6, labels, rng.integers(0, num_classes - 1, size=shape))
    void = rng.random(shape) < 0.2
    void[:, :2, :] = True
    labels[void] = VOID
    predictions[void] = num_classes - 1  # would create class 5 if void pixels leaked in
    return labels, predictions


def test_mean_iou_matches_an_independent_computation():
    labels, predictions = _segmentation_case()
    keep = labels != VOID
    reference = skm.confusion_matrix(labels[keep], predictions[keep], labels=np.arange(6))
    cm = tm.confusion_matrix(labels, predictions, num_classes=6)
    np.testing.assert_array_equal(cm, reference)
    assert cm.dtype == np.int64 and cm.sum() == keep.sum()
    with np.errstate(invalid="ignore"):
        iou = np.diag(reference) / (reference.sum(0) + reference.sum(1) - np.diag(reference))
    got = tm.iou_from_confusion(cm)
    assert np.isnan(got[5]) and np.isnan(iou[5])
    np.testing.assert_allclose(got[:5], iou[:5], rtol=1e-12)
    assert tm.mean_iou(cm) == pytest.approx(np.nanmean(iou), rel=1e-12)
    assert tm.pixel_accuracy(cm) == pytest.approx(skm.accuracy_score(labels[keep], predictions[keep]))
    assert tm.mean_class_accuracy(cm) == pytest.approx(
        skm.balanced_accuracy_score(labels[keep], predictions[keep]))


def test_confusion_matrices_add_over_batches():
    labels, predictions = _segmentation_case(seed=1)
    whole = tm.confusion_matrix(labels, predictions, 6)
    parts = sum(tm.confusion_matrix(labels[i:i + 1], predictions[i:i + 1], 6) for i in range(len(labels)))
    np.testing.assert_array_equal(whole, parts)


def test_segmentation_report():
    labels, predictions = _segmentation_case()
    cm = tm.confusion_matrix(labels, predictions, 6)
    report = tm.segmentation_report(cm, class_names=list("abcdef"))
    assert report["mIoU"] == tm.mean_iou(cm) and report["num_pixels"] == int((labels != VOID).sum())
    assert np.isnan(report["iou"]["f"]) and report["iou"]["a"] == tm.iou_from_confusion(cm)[0]
    assert report["pixel_accuracy"] == tm.pixel_accuracy(cm)


def test_empty_confusion_gives_nan_without_warnings():
    cm = tm.confusion_matrix(np.full((1, 2, 2), VOID), np.zeros((1, 2, 2), int), 3)
    assert cm.sum() == 0
    with np.testing.suppress_warnings() as record:
        record.record(RuntimeWarning)
        assert np.isnan(tm.mean_iou(cm)) and np.isnan(tm.pixel_accuracy(cm))
        assert not record.log


def test_confusion_matrix_errors_quote_the_value():
    labels = np.array([[[0, 1], [7, VOID]]])
    with pytest.raises(ValueError, match="got the value 7"):
        tm.confusion_matrix(labels, np.zeros_like(labels), 6)
    with pytest.raises(ValueError, match="got the value -1"):
        tm.confusion_matrix(np.zeros((1, 2, 2), int), np.full((1, 2, 2), -1), 6)
    # An out-of-range prediction at a void pixel is ignored like everything else there.
    tm.confusion_matrix(np.array([[0, VOID]]), np.array([[0, 99]]), 6)
    with pytest.raises(ValueError, match=r"\(1, 2\) and \(2, 1\)"):
        tm.confusion_matrix(np.zeros((1, 2), int), np.zeros((2, 1), int), 6)
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        tm.iou_from_confusion(np.zeros((2, 3)))


# -- streaming Keras metric ------------------------------------------------------------------------


@pytest.mark.parametrize("jit_compile", [False, True])
def test_streaming_metric_matches_numpy_inside_model_evaluate(jit_compile):
    num_classes = 6
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(10, 5, 7, num_classes)).astype(np.float32)
    labels, _ = _segmentation_case(seed=2, shape=(10, 5, 7), num_classes=num_classes)

    inputs = keras.Input((5, 7, num_classes))
    model = keras.Model(inputs, keras.layers.Activation("softmax")(inputs))
    metric = tm.StreamingConfusionMatrix(num_classes)
    model.compile(loss=tm.masked_sparse_categorical_crossentropy(), metrics=[metric], jit_compile=jit_compile)
    logs = model.evaluate(logits, labels, batch_size=3, verbose=0, return_dict=True)  # 4 batches, last short

    expected = tm.confusion_matrix(labels, logits.argmax(-1), num_classes)
    np.testing.assert_array_equal(metric.confusion(), expected)
    assert logs["mean_iou"] == pytest.approx(tm.mean_iou(expected), rel=1e-6)


def test_streaming_metric_eager_updates_reset_and_config():
    metric = tm.StreamingConfusionMatrix(4, name="miou")
    assert float(metric.result()) == 0.0
    labels, predictions = _segmentation_case(seed=4, shape=(2, 6, 6), num_classes=4)
    one_hot = np.eye(4, dtype=np.float32)[predictions]
    metric.update_state(labels[..., None], one_hot)  # [B, H, W, 1] labels are accepted too
    metric.update_state(labels, one_hot, sample_weight=np.array([2.0, 0.0]))  # per-image weights
    expected = tm.confusion_matrix(labels, predictions, 4)
    np.testing.assert_array_equal(metric.confusion(), expected + 2 * tm.confusion_matrix(labels[:1], predictions[:1], 4))
    metric.reset_state()
    metric.update_state(labels, one_hot)
    np.testing.assert_array_equal(metric.confusion(), expected)
    assert float(metric.result()) == pytest.approx(tm.mean_iou(expected), rel=1e-6)

    clone = tm.StreamingConfusionMatrix.from_config(metric.get_config())
    assert (clone.num_classes, clone.void_index, clone.name) == (4, VOID, "miou")
    with pytest.raises(ValueError, match="got 3"):
        metric.update_state(labels, one_hot[..., :3])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)got the value.*9"):
        metric.update_state(np.full((1, 2, 2), 9), np.ones((1, 2, 2, 4), np.float32))


def test_streaming_metric_under_tf_function():
    metric = tm.StreamingConfusionMatrix(3, void_index=None)
    labels = np.array([[[0, 1], [2, 2]]])
    probabilities = np.eye(3, dtype=np.float32)[[[[0, 2], [2, 1]]]]
    tf.function(metric.update_state)(tf.constant(labels), tf.constant(probabilities))
    np.testing.assert_array_equal(metric.confusion(), [[1, 0, 0], [0, 0, 1], [0, 1, 1]])


# -- masked loss -----------------------------------------------------------------------------------


def _loss_case(seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(3, 4, 5, 6)).astype(np.float32) * 3
    labels = rng.integers(0, 6, size=(3, 4, 5))
    labels[rng.random(labels.shape) < 0.3] = VOID
    labels[0, 0, 0] = VOID
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    keep = labels != VOID
    expected = -np.log(probabilities[keep, labels[keep]]).mean()
    return logits, probabilities, labels, expected


def test_masked_loss_is_the_mean_ce_over_non_void_pixels():
    logits, probabilities, labels, expected = _loss_case()
    assert float(tm.masked_sparse_categorical_crossentropy()(labels, probabilities)) == pytest.approx(expected, rel=1e-5)
    assert float(tm.masked_sparse_categorical_crossentropy(from_logits=True)(labels, logits)) == pytest.approx(
        expected, rel=1e-5)
    assert float(tm.masked_sparse_categorical_crossentropy()(labels[..., None], probabilities)) == pytest.approx(
        expected, rel=1e-5)


def test_masked_loss_without_void_equals_keras_sparse_crossentropy():
    logits, probabilities, labels, _ = _loss_case(seed=1)
    labels = np.where(labels == VOID, 0, labels)
    reference = keras.losses.SparseCategoricalCrossentropy()(labels, probabilities)
    assert float(tm.masked_sparse_categorical_crossentropy()(labels, probabilities)) == pytest.approx(
        float(reference), rel=1e-5)


@pytest.mark.parametrize("from_logits", [False, True])
def test_void_predictions_change_neither_loss_nor_gradient(from_logits):
    logits, probabilities, labels, _ = _loss_case(seed=2)
    y_pred = logits if from_logits else probabilities
    void = labels == VOID
    altered = y_pred.copy()
    altered[void] = np.random.default_rng(9).normal(size=altered[void].shape) * 100
    altered[0, 0, 0] = np.nan  # even a NaN at a void pixel stays out
    loss_fn = tm.masked_sparse_categorical_crossentropy(from_logits=from_logits)

    values, gradients = [], []
    for prediction in (y_pred, altered):
        prediction = tf.Variable(prediction)
        with tf.GradientTape() as tape:
            value = loss_fn(labels, prediction)
        values.append(float(value))
        gradients.append(tape.gradient(value, prediction).numpy())
    assert values[0] == values[1]
    np.testing.assert_array_equal(gradients[0], gradients[1])
    assert np.all(gradients[0][void] == 0) and np.all(np.isfinite(gradients[0]))
    assert np.abs(gradients[0][~void]).sum() > 0


def test_masked_loss_is_zero_for_an_all_void_batch():
    prediction = tf.Variable(np.full((2, 3, 3, 4), 0.25, np.float32))
    with tf.GradientTape() as tape:
        value = tm.masked_sparse_categorical_crossentropy()(np.full((2, 3, 3), VOID), prediction)
    assert float(value) == 0.0
    np.testing.assert_array_equal(tape.gradient(value, prediction).numpy(), 0.0)


def test_masked_loss_is_stable_for_zero_probabilities_and_serializes():
    labels = np.array([[[0, 1]]])
    probabilities = np.array([[[[0.0, 1.0], [1.0, 0.0]]]], np.float32)
    value = float(tm.masked_sparse_categorical_crossentropy()(labels, probabilities))
    assert np.isfinite(value) and value == pytest.approx(-np.log(1e-7), rel=1e-3)
    loss = tm.masked_sparse_categorical_crossentropy(void_index=0, from_logits=True)
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert (clone.void_index, clone.from_logits) == (0, True)
