"""One downstream run: build the model, initialise it (colorizer or random), fine-tune it in one or
two phases, score it on the test split, and write everything to a run folder."""

import contextlib
import dataclasses
import functools
import json
import math
import os
import time

import keras
import numpy as np

from cgan_colorization import pretrained
from cgan_colorization.constants import CHECKPOINTS, DEFAULT_CHECKPOINT
from cgan_colorization.engine import runlock
from cgan_colorization.engine.callbacks import save_model_file
from cgan_colorization.engine.config import TrainConfig, check_config, load_config, save_config
from cgan_colorization.networks.batchnorm import batchnorm_layers
from cgan_colorization.pretexts import registry
from cgan_colorization.engine.distribute import (is_chief, make_strategy, set_precision, weights_digest, worker_folder,
                                         worker_index)
from cgan_colorization.apps.inference import describe_checkpoint, load_colorizer
from cgan_colorization.engine.plots import read_csv_log, save_loss_curves
from data import labelled
from data.diskfull import DiskFullError, as_disk_full, is_disk_full, write_text
from data.labelled import TASKS
from data.labelled.masks import VOID
from transfer import metrics as tm
from cgan_colorization.constants import DEFAULT_COLORIZER
from transfer.config import default_run_name
from transfer.finetune import UNFROZEN_BN, Phase, two_phase_finetune
from transfer.models import build_classifier, build_segmenter, transfer_weights

INITS = ("colorization", "random")


def phases(config):
    """The schedule: one unfrozen phase from scratch, or frozen-then-unfrozen from the colorizer."""
    if config.init == "random":
        return [Phase(config.baseline_epochs, config.lr, frozen=False)]
    return [Phase(config.frozen_epochs, config.lr, frozen=True),
            Phase(config.unfrozen_epochs, config.unfrozen_lr, frozen=False)]


def check_colorizer(path):
    """The colorizer `path` as a folder or file to load: a run folder of train_colorizer.py, a generator
    weights file or a shipped `pretrained:NAME` (None: DEFAULT_COLORIZER). Nothing is trained here: a
    colorizer that does not exist is a one-sentence FileNotFoundError that gives the command that trains
    it and the shipped alternative, so that every colorizer a study uses is made by a step of its own."""
    given = path is not None
    path = path if given else DEFAULT_COLORIZER
    if pretrained.is_pretrained(path):
        return pretrained.folder(path)
    if os.path.exists(path):
        return path
    out = (os.path.dirname(path) or ".") if path.endswith((".h5", ".keras")) else path
    what = f"the colorizer {path} does not exist" if given else \
        f"no --colorizer was given and the default one, {path}, does not exist"
    shipped = " or ".join(f"--colorizer {pretrained.PREFIX}{name}" for name in pretrained.SHIPPED)
    raise FileNotFoundError(f"{what}: train it first with `python train_colorizer.py --out {out}`, or pass {shipped} "
                            "(shipped with the package).")


def load_init_colorizer(path, checkpoint=DEFAULT_CHECKPOINT):
    """The colorizer (a `pretext.Colorizer`) whose weights initialise a colorization run, at
    `checkpoint`; `path` as `check_colorizer` takes it (which refuses a missing one)."""
    return load_colorizer(check_colorizer(path), checkpoint=checkpoint)


def _colorizer_run(path):
    """The `TrainConfig` of the colorizer run at `path` (a run folder or a file in one), or None."""
    if pretrained.is_pretrained(path):
        path = pretrained.folder(path)
    if not os.path.exists(path):
        return None
    run_dir = path if os.path.isdir(path) else os.path.dirname(path)
    return load_config(run_dir) if os.path.isfile(os.path.join(run_dir, "config.json")) else None


def _architecture(config, colorizer):
    """Input size, U-Net width and backbone: given ones first, then the colorizer's run (so that the
    random baseline has the very architecture the colorizer init gets), then the fast preset's."""
    fast = TrainConfig()
    size, width, backbone = fast.image_size, fast.base_filters, fast.backbone
    run = colorizer.config if colorizer is not None else _colorizer_run(config.colorizer or DEFAULT_COLORIZER)
    if run is not None:
        size, width, backbone = run.image_size, run.base_filters, check_config(run).backbone
    elif colorizer is not None:  # a bare generator.keras: its size is its input's; its width must be given
        size = colorizer.image_size
        if not config.base_filters:
            raise ValueError("the colorizer has no config.json beside it: give --base-filters (its U-Net width).")
    if config.init == "colorization" and config.backbone and backbone != config.backbone:
        raise ValueError(f"--backbone {config.backbone} does not match the colorizer's {backbone}: the weights "
                         "transfer only into the same backbone.")
    backbone = config.backbone or backbone
    if backbone not in registry.BACKBONES:
        raise ValueError(f"--backbone must be one of {tuple(registry.BACKBONES)}, received {backbone!r}.")
    return config.image_size or size, config.base_filters or width, backbone


def encoder_only(colorizer):
    """Whether only the encoder of `colorizer` transfers: a colorizer trained without skips has a
    decoder that never saw them, and the supervised ceiling has no decoder at all."""
    no_skips = colorizer.config is not None and getattr(colorizer.config, "no_skips", False)
    return no_skips or (colorizer.pretext is not None and not colorizer.pretext.trains_decoder)


def colorizer_pretext(colorizer):
    """The registry entry of a loaded colorizer's pretext; a bare weights file is the paper's."""
    return colorizer.pretext or registry.PRETEXTS[registry.PAPER_PRETEXT]


def pretext_name(config, colorizer, backbone):
    """The init's name in the results: the random floor of the backbone, or the colorizer's pretext."""
    if config.init == "random":
        return registry.BACKBONES[backbone].random_name
    return colorizer_pretext(colorizer).name


def backbone_options(config, backbone):
    """The options of `backbone` that `config` sets (e.g. MobileNetV2's `bn_momentum`; unset ones take
    the registry's default); an option of another backbone is a one-sentence ValueError."""
    options = {}
    for spec in registry.BACKBONES.values():
        for name in spec.options:
            value = getattr(config, name, None)
            if value is None:
                continue
            if spec.name != backbone:
                raise ValueError(f"--{name.replace('_', '-')} is an option of the {spec.label}: it needs --backbone "
                                 f"{spec.name}, received --backbone {backbone}.")
            options[name] = value
    return options


def build_model(config, num_classes, image_size, base_filters, synchronized_bn=False, backbone="unet",
                single_label=False):
    """The task's model on `backbone`, from N(0, 0.02) (the heads always; the rest until a transfer);
    a `single_label` classifier ends in a softmax."""
    options = backbone_options(config, backbone)
    if config.task == "classification":
        return build_classifier(image_size, base_filters, num_classes, config.dense_units, seed=config.seed,
                                synchronized_bn=synchronized_bn, backbone=backbone, backbone_options=options,
                                single_label=single_label)
    return build_segmenter(image_size, base_filters, num_classes, seed=config.seed,
                           synchronized_bn=synchronized_bn, backbone=backbone, backbone_options=options)


def _scores(model, dataset):
    truths, preds = [], []
    for x, y in dataset:
        truths.append(y.numpy())
        preds.append(model(x, training=False).numpy())
    return np.concatenate(truths), np.concatenate(preds)


def evaluate_model(model, config, source, dataset, with_per_image=False):
    """Test-split scores: mAP and the accuracies, or per-class IoU, mIoU and pixel accuracy. With
    `with_per_image`, also the per-image arrays that a bootstrap resamples (`transfer.stats`): `correct`
    (int8 [N], top-1) for one label per image, `scores` and `labels` ([N, C]) for several, `confusion`
    (int32 [N, C, C], void excluded) for segmentation."""
    if config.task == "classification":
        y_true, scores = _scores(model, dataset)
        if _single_label(source):
            report = tm.single_label_report(y_true, scores, class_names=source.class_names)
            per_image = dict(correct=(scores.argmax(axis=1) == y_true.argmax(axis=1)).astype(np.int8))
        else:
            report = tm.classification_report(y_true, scores, class_names=source.class_names)
            per_image = dict(scores=scores.astype(np.float32), labels=y_true.astype(np.int8))
    else:
        n, confusion = source.num_classes, []
        for x, y in dataset:
            prediction = np.argmax(model(x, training=False).numpy(), axis=-1)
            confusion += [tm.confusion_matrix(truth, guess, n, void_index=VOID) for truth, guess in zip(y.numpy(),
                                                                                                       prediction)]
        per_image = dict(confusion=np.array(confusion, np.int32).reshape(-1, n, n))
        report = tm.segmentation_report(per_image["confusion"].sum(axis=0, dtype=np.int64),
                                        class_names=source.class_names)
    report = dict(report, num_images=len(next(iter(per_image.values()))))
    return (report, per_image) if with_per_image else report


def label_subset(source, config):
    """(training images used, training images of the full split): the first `label_fraction` of the
    split's seeded order, so the subsets of smaller fractions nest in those of larger ones."""
    full = source.split_size("train", config.train_size or None)
    return max(1, math.ceil(config.label_fraction * full)), full


def _datasets(config, source, image_size, color_space="lab"):
    used, _ = label_subset(source, config)
    sizes = dict(train=used, val=config.val_size or None, test=config.test_size or None)
    if config.task == "classification":
        make = labelled.classification_dataset
    else:  # scale_shorter 0 means "the input size": crops then cover the whole short side of the scene
        shorter = image_size if config.scale_shorter == 0 else config.scale_shorter
        make = functools.partial(labelled.segmentation_dataset, scale_shorter=shorter)
    return {split: make(source, split, image_size=image_size, batch_size=config.batch_size, seed=config.seed,
                        training=split == "train", size=sizes[split], color_space=color_space)
            for split in ("train", "val", "test")}


def _single_label(source):
    """Whether the labelled source gives one class per image (softmax head, top-1) or several."""
    return bool(getattr(source, "single_label", False))


def _loss_and_metrics(config, source):
    if config.task == "classification" and _single_label(source):
        return "categorical_crossentropy", lambda: [
            keras.metrics.CategoricalAccuracy(name="top1"),
            keras.metrics.TopKCategoricalAccuracy(k=5, name="top5")]
    if config.task == "classification":
        return "binary_crossentropy", lambda: [
            keras.metrics.AUC(curve="PR", multi_label=True, name="pr_auc"),
            keras.metrics.BinaryAccuracy(name="per_label_acc")]
    return keras.losses.SparseCategoricalCrossentropy(ignore_class=VOID), lambda: []


def run_finetune(config, verbose="auto", log=print, inspect=None):
    """Runs one downstream experiment and returns its `metrics.json` content. `inspect(model, datasets,
    source)`, called after training and before the test, may add a dict to it as "inspection" (e.g.
    `transfer.bn_diagnosis`).

    The chief holds the lock of the run folder for the whole run (`runlock`); a write that finds the
    disk full stops the run with a one-sentence `DiskFullError`."""
    if config.task not in TASKS or config.init not in INITS:
        raise ValueError(f"task must be one of {TASKS} and init one of {INITS}, received "
                         f"task={config.task!r}, init={config.init!r}.")
    if config.unfrozen_bn not in UNFROZEN_BN:
        raise ValueError(f"--unfrozen-bn must be one of {UNFROZEN_BN}, received {config.unfrozen_bn!r}.")
    if config.checkpoint not in CHECKPOINTS:
        raise ValueError(f"--checkpoint must be one of {CHECKPOINTS}, received {config.checkpoint!r}.")
    if config.init == "colorization":  # a missing colorizer is refused before anything is written
        check_colorizer(config.colorizer)
    run_dir = os.path.join(config.out or f"runs/{'classifier' if config.task == 'classification' else 'segmenter'}",
                           config.run_name or default_run_name(config))
    chief = is_chief()
    try:
        with runlock.hold(run_dir, flag="--out or --run-name") if chief else contextlib.nullcontext(), \
                worker_folder(run_dir) as writes_to:  # other workers of a multi-worker run: a scratch folder
            return _run_finetune(config, writes_to, chief, verbose, log, inspect)
    except Exception as error:  # noqa: BLE001 - a full disk becomes one sentence; anything else is re-raised
        if isinstance(error, runlock.RunLocked) or not is_disk_full(error) or \
                (isinstance(error, DiskFullError) and error.kept):
            raise
        raise as_disk_full(error, "the run stopped (a fine-tuning run keeps no backup): free space and run the same "
                                  "command to start it again", run_dir) from error


def _run_finetune(config, run_dir, chief, verbose, log, inspect):
    strategy = make_strategy(config.strategy, config.collective_timeout)  # first: it may configure collectives
    keras.utils.set_random_seed(config.seed)
    set_precision(config.mixed_precision, strategy.num_replicas_in_sync)
    start = time.time()
    source = labelled.parse_labelled(
        config.dataset, config.task, seed=config.seed, split_mode=config.split_mode,
        test_sequence=config.test_sequence, val_sequence=config.val_sequence,
        include_difficult=config.include_difficult, void_index=config.void_index,
        min_fraction=config.min_fraction, num_classes=config.num_classes,
        synthetic_classes=config.synthetic_classes)
    colorizer = load_init_colorizer(config.colorizer, config.checkpoint) if config.init == "colorization" else None
    image_size, base_filters, backbone = _architecture(config, colorizer)
    if colorizer is not None:
        log(f"colorizer weights: {colorizer.checkpoint['file']}, {describe_checkpoint(colorizer.checkpoint)}")
    with strategy.scope():
        model = build_model(config, source.num_classes, image_size, base_filters,
                            synchronized_bn=strategy.num_replicas_in_sync > 1, backbone=backbone,
                            single_label=_single_label(source))
    report, transferred = None, []
    if config.init == "colorization":
        report = transfer_weights(colorizer.network, model,
                                  exclude=getattr(model, "decoder_layers", ()) if encoder_only(colorizer) else ())
        transferred = report.copied
        log(report.summary())

    save_config(config, run_dir, image_size_resolved=image_size, base_filters_resolved=base_filters,
                backbone_resolved=backbone)  # finetune_*.py --config RUN/config.json re-runs it
    data = _datasets(config, source, image_size, registry.BACKBONES[backbone].color_space)
    loss, metrics_factory = _loss_and_metrics(config, source)
    used, full = label_subset(source, config)
    train, steps = data["train"], None
    if used < full:  # a share of the labels, repeated: every share takes the full split's steps per epoch
        train, steps = train.repeat(), math.ceil(full / config.batch_size)
    history = two_phase_finetune(model, train, data["val"], phases(config), loss=loss,
                                 metrics_factory=metrics_factory, transferred=transferred, log_dir=run_dir,
                                 steps_per_epoch=steps, verbose=verbose, unfrozen_bn=config.unfrozen_bn,
                                 recalibrate_batches=config.recalibrate_bn)
    inspection = inspect(model, data, source) if inspect else None  # before the test, as it always ran
    test, per_image = evaluate_model(model, config, source, data["test"], with_per_image=True)
    result = {
        "task": config.task, "init": config.init, "pretext": pretext_name(config, colorizer, backbone),
        "dataset": config.dataset, "seed": config.seed, "label_fraction": config.label_fraction,
        "num_train": used,
        "image_size": image_size, "base_filters": base_filters, "backbone": backbone,
        "bn_momenta": sorted({float(layer.momentum) for layer in batchnorm_layers(model)}),
        "unfrozen_bn": config.unfrozen_bn if config.init == "colorization" else None,
        "colorizer": colorizer.checkpoint if colorizer is not None else None,
        "pretext_seed": getattr(colorizer.config, "seed", None) if colorizer is not None else None,  # its run
        "inspection": inspection,
        "test": test,
        "history": history,
        "transfer": dataclasses.asdict(report) if report else None,
        "seconds": round(time.time() - start, 1),
        "weights_sha256": weights_digest(model),
    }
    if config.save_weights:
        save_model_file(model, os.path.join(run_dir, "model.weights.h5"), "the fine-tuned weights")
    write_text(os.path.join(run_dir, "metrics.json"), json.dumps(result, indent=2, default=float), "the report")
    items = source.items("test", config.test_size or None)  # None for the synthetic scenes
    if items is not None and len(items) == test["num_images"]:  # the names pair runs image by image
        per_image["items"] = np.array([str(item) for item in items])
    np.savez_compressed(os.path.join(run_dir, "per_image.npz"), seed=config.seed, **per_image)
    log(f"worker {worker_index()}: final weights sha256 {result['weights_sha256']}")  # equal on every worker
    if not chief:
        return result
    plot_comparison(os.path.dirname(run_dir), config.task)
    return result


def plot_comparison(parent, task):
    """Training loss per epoch of every init found under `parent`, on one axis (the paper's Fig. 8)."""
    series = {}
    names = sorted(d for d in os.listdir(parent) if os.path.isfile(os.path.join(parent, d, "log.csv")))
    for init in names:
        path = os.path.join(parent, init, "log.csv")
        if os.path.isfile(path):
            log = read_csv_log(path)
            series[f"{init} init"] = log.get("loss", [])
            if log.get("val_loss"):
                series[f"{init} init (val)"] = log["val_loss"]
    if series:
        save_loss_curves(series, os.path.join(parent, "loss_curves.png"), f"{task}: training loss")
