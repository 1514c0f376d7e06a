"""BatchNorm tools for short schedules: set the momentum of every BatchNorm layer (nested models
included), re-estimate the moving statistics on training batches ("recalibrate"), and measure how far
the moving statistics are from the data's and what that does to a model's predictions.

Why: Keras' MobileNetV2 builds its BatchNorm layers with momentum 0.999, so after n training steps
the moving statistics still hold 0.999^n of their initial values (0 and 1), 0.68 after the 390
steps of the fast segmentation schedule. Training normalizes with each batch's own statistics,
inference with the moving ones, so a short from-scratch run can train well and still predict one
class everywhere in inference mode. `statistics_gap` shows it, `recalibrate_batchnorm` repairs a
trained model, a lower momentum (`set_momentum`, the MobileNetV2 backbone's `bn_momentum`) keeps it
from happening. `transfer.bn_diagnosis` puts them together.
"""

import contextlib

import keras
import numpy as np

def batchnorm_layers(model):
    """Every BatchNormalization layer of `model` (a model or a layer), nested models included, in
    graph order."""
    if isinstance(model, keras.layers.BatchNormalization):
        return [model]
    found = []
    for layer in getattr(model, "layers", ()):
        found.extend(batchnorm_layers(layer))
    return found


def _dropout_layers(model):
    if isinstance(model, keras.layers.Dropout):
        return [model]
    found = []
    for layer in getattr(model, "layers", ()):
        found.extend(_dropout_layers(layer))
    return found


def check_momentum(momentum):
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0.0 <= momentum < 1.0:
        raise ValueError(f"a BatchNorm momentum (--bn-momentum) must lie in [0, 1), received {momentum!r}.")
    return float(momentum)


def set_momentum(model, momentum):
    """Sets the momentum of every BatchNorm layer of `model` (nested ones included); returns how many.
    Takes effect at the next compile (a traced train function keeps the value it was traced with)."""
    momentum = check_momentum(momentum)
    layers = batchnorm_layers(model)
    for layer in layers:
        layer.momentum = momentum
    return len(layers)


@contextlib.contextmanager
def _overridden(layers, **values):
    saved = [{name: getattr(layer, name) for name in values} for layer in layers]
    try:
        for layer in layers:
            for name, value in values.items():
                setattr(layer, name, value)
        yield
    finally:
        for layer, old in zip(layers, saved):
            for name, value in old.items():
                setattr(layer, name, value)


@contextlib.contextmanager
def batch_statistics(model):
    """Inside, `model(x, training=True)` normalizes with each batch's own statistics but changes
    nothing: the moving statistics stay (momentum 1) and dropout is off (rate 0). The "training
    mode" twin of inference, for comparing the two on the same weights."""
    with _overridden(batchnorm_layers(model), momentum=1.0), _overridden(_dropout_layers(model), rate=0.0):
        yield


def _inputs(batch):
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def recalibrate_batchnorm(model, batches, steps=50, layers=None):
    """Re-estimates the moving statistics of every trainable BatchNorm layer of `model` (or of those
    in `layers`) from `steps` batches of `batches` (an iterable of inputs or of (inputs, targets)
    pairs), as the exact average of the batch statistics (PyTorch's cumulative average, SWA's
    `bn_update`). Weights, frozen BatchNorm layers and the optimizer are untouched; dropout is off
    while it runs, as at evaluation.

    Runs eagerly, one forward pass per batch; returns the number of batches used (0 leaves the
    statistics as they were).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, received steps={steps!r}.")
    trainable = [layer for layer in batchnorm_layers(model) if layer.trainable]
    chosen = None if layers is None else {id(layer) for layer in layers}
    layers = [layer for layer in trainable if chosen is None or id(layer) in chosen]
    others = [layer for layer in trainable if chosen is not None and id(layer) not in chosen]
    if not steps or not layers:
        return 0
    used = 0
    with _overridden(_dropout_layers(model), rate=0.0), _overridden(others, momentum=1.0):
        for batch in batches:
            if used == steps:
                break
            used += 1
            # moving <- moving * (k-1)/k + batch / k: the running mean of the k batches seen so far.
            with _overridden(layers, momentum=(used - 1) / used):
                model(_inputs(batch), training=True)
    return used


def snapshot_statistics(layers):
    """Copies of the moving mean and variance of each BatchNorm layer in `layers`."""
    return [(layer.moving_mean.numpy().copy(), layer.moving_variance.numpy().copy()) for layer in layers]


def restore_statistics(layers, snapshot):
    """Puts back the statistics `snapshot_statistics` copied."""
    for layer, (mean, variance) in zip(layers, snapshot):
        layer.moving_mean.assign(mean)
        layer.moving_variance.assign(variance)


def statistics_gap(model, batches, steps=20):
    """How far each BatchNorm layer's moving statistics are from those of the data in `batches`
    (estimated as `recalibrate_batchnorm` does, then put back). Per layer: `mean_shift`, the channel
    median of |moving mean - data mean| / data std; `variance_ratio`, the channel median of moving
    variance / data variance; `remaining`, how much of the initial (0, 1) the moving statistics still
    look like (|moving - data| / |init - data|, channel median; 1 = never moved, 0 = on the data).
    Frozen BatchNorm layers are skipped."""
    layers = [layer for layer in batchnorm_layers(model) if layer.trainable]
    before = snapshot_statistics(layers)
    recalibrate_batchnorm(model, batches, steps)
    data = snapshot_statistics(layers)
    restore_statistics(layers, before)
    rows = []
    for layer, (mean, var), (data_mean, data_var) in zip(layers, before, data):
        std = np.sqrt(data_var + layer.epsilon)
        distance = np.abs(mean - data_mean) / std + np.abs(np.log((var + layer.epsilon) / (data_var + layer.epsilon)))
        initial = np.abs(data_mean) / std + np.abs(np.log((1.0 + layer.epsilon) / (data_var + layer.epsilon)))
        rows.append(dict(layer=layer.name, momentum=float(layer.momentum),
                         mean_shift=float(np.median(np.abs(mean - data_mean) / std)),
                         variance_ratio=float(np.median((var + layer.epsilon) / (data_var + layer.epsilon))),
                         remaining=float(np.median(distance / np.maximum(initial, 1e-6)))))
    return rows


def summarize_gap(rows):
    """The layers' medians and the worst layer of `statistics_gap`."""
    if not rows:
        return {}
    worst = max(rows, key=lambda r: r["mean_shift"])
    ratios = np.array([r["variance_ratio"] for r in rows])
    return dict(layers=len(rows),
                mean_shift_median=float(np.median([r["mean_shift"] for r in rows])),
                variance_ratio_median=float(np.median(ratios)),
                variance_ratio_range=[float(ratios.min()), float(ratios.max())],
                remaining_median=float(np.median([r["remaining"] for r in rows])),
                worst_layer=worst["layer"], worst_mean_shift=worst["mean_shift"])
