"""Why a downstream model predicts the same thing for every image: one run, then the same trained
weights scored four ways.

* inference mode (what the test reports), with the moving statistics of training;
* batch statistics (each test batch normalized with its own statistics, nothing updated): if this
  scores well while inference mode sits at chance, the network learnt and the moving statistics are
  what is wrong;
* the moving statistics re-estimated on training batches (`batchnorm.recalibrate_batchnorm`): in the
  encoder only, in the decoder only, and everywhere, which says where the wrong statistics are;
* how far the moving statistics are from the data's (`batchnorm.statistics_gap`), the share of the
  initial statistics the momentum leaves after the run's steps (momentum ** steps), the input range
  the network sees, and how much the predictions vary across images.

    python diagnose_batchnorm.py --task segmentation --init random --backbone mobilenetv2 --bn-momentum 0.999

The run folder gets the usual files; its `metrics.json` holds the diagnosis under "inspection".
"""

import dataclasses

import numpy as np

from cgan_colorization.networks import batchnorm as bn
from transfer.config import STATISTICS_BATCHES, default_run_name


class _BatchStatistics:
    """`model` called as if in inference mode, but normalizing each batch with its own statistics."""

    def __init__(self, model):
        self.model = model

    def __call__(self, x, training=False):
        return self.model(x, training=True)


def prediction_spread(model, dataset, task):
    """How much the predictions vary across the images of `dataset`: the number of distinct
    predictions (argmax maps, or label sets at 0.5), the number of classes predicted anywhere, and the
    mean over outputs of the standard deviation of the probabilities across images."""
    outputs = np.concatenate([model(x, training=False).numpy() for x, _ in dataset])
    if task == "classification":
        hard = outputs >= 0.5
        classes = int(hard.any(axis=0).sum())
    else:
        hard = outputs.argmax(-1)
        classes = int(len(np.unique(hard)))
    distinct = len({row.tobytes() for row in hard.reshape(len(hard), -1)})
    return dict(images=int(len(outputs)), distinct_predictions=distinct, classes_predicted=classes,
                probability_std_across_images=float(outputs.std(axis=0).mean()))


def _score(evaluate, model, key):
    result = evaluate(model)
    return {k: v for k, v in result.items() if k in (key, "pixel_accuracy", "per_label_accuracy", "sample_f1")}


def _input_range(model, batch):
    import keras

    x = batch[0]
    ranges = {"input": [float(np.min(x)), float(np.max(x))]}
    names = {layer.name for layer in model.layers}
    if "mnv2_input_scale" in names:  # what MobileNetV2's first convolution sees (it expects [-1, 1])
        scaled = keras.Model(model.input, model.get_layer("mnv2_input_scale").output)(x).numpy()
        ranges["encoder_input"] = [float(scaled.min()), float(scaled.max())]
    return ranges


def batchnorm_inspection(config, statistics_batches=STATISTICS_BATCHES):
    """The `inspect` function for `run_finetune` that measures all of the above on the test split."""
    from transfer.experiment import evaluate_model

    key = "mAP" if config.task == "classification" else "mIoU"

    def inspect(model, data, source):
        evaluate = lambda m: evaluate_model(m, config, source, data["test"])  # noqa: E731
        trainable = [layer for layer in bn.batchnorm_layers(model) if layer.trainable]
        saved = bn.snapshot_statistics(trainable)
        steps = int(model.optimizer.iterations) if model.optimizer is not None else 0
        result = dict(
            momenta=sorted({float(layer.momentum) for layer in trainable}),
            optimizer_steps_last_phase=steps,
            initial_share_left={str(m): float(m ** steps) for m in sorted({layer.momentum for layer in trainable})},
            input_range=_input_range(model, next(iter(data["train"]))),
            gap=bn.summarize_gap(bn.statistics_gap(model, data["train"], statistics_batches)),
            inference=_score(evaluate, model, key),
            inference_spread=prediction_spread(model, data["test"], config.task),
        )
        with bn.batch_statistics(model):
            result["batch_statistics"] = _score(evaluate, _BatchStatistics(model), key)
        decoder = [layer for layer in trainable if "dec" in layer.name]
        encoder = [layer for layer in trainable if "dec" not in layer.name]
        for name, layers in (("encoder", encoder), ("decoder", decoder), ("all", trainable)):
            bn.restore_statistics(trainable, saved)
            used = bn.recalibrate_batchnorm(model, data["train"], statistics_batches, layers=layers)
            result[f"recalibrated_{name}"] = dict(_score(evaluate, model, key), layers=len(layers), batches=used)
        result["recalibrated_all_spread"] = prediction_spread(model, data["test"], config.task)
        bn.restore_statistics(trainable, saved)
        return result

    return inspect


def diagnosis_run_name(config):
    """The diagnosis' folder under --out: the backbone when given, the fine-tuning run's name and the
    BatchNorm momentum when given, so that runs at different momenta never overwrite each other
    (e.g. "mobilenetv2-random-seed0-momentum0.999")."""
    parts = [config.backbone] if config.backbone else []
    parts.append(default_run_name(config))
    if config.bn_momentum is not None:
        parts.append(f"momentum{config.bn_momentum:g}")
    return "-".join(parts)


def diagnose(config, statistics_batches=STATISTICS_BATCHES):
    """Trains the run of `config` as the fine-tuning scripts do and returns its result, with the
    diagnosis under "inspection"."""
    from transfer.experiment import run_finetune

    config = dataclasses.replace(config, out=config.out or f"runs/bn-diagnosis/{config.task}",
                                 run_name=config.run_name or diagnosis_run_name(config))
    return run_finetune(config, verbose=2, inspect=batchnorm_inspection(config, statistics_batches))
