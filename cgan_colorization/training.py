"""Training a colorizer: from a `TrainConfig` to a run folder with weights, logs and samples."""

import json
import os
import shutil
import time
import warnings

import keras
import tensorflow as tf

from cgan_colorization import callbacks as cb
from cgan_colorization.config import OBJECTIVES, check_backbone, color_space, save_config
from cgan_colorization.distribute import is_chief, make_strategy, set_precision, worker_index
from cgan_colorization.gan import ColorizationGAN
from cgan_colorization.objectives import ZHANG_STATS_FILE, ClassificationColorizer, L1Colorizer
from cgan_colorization.models import build_discriminator, build_generator
from cgan_colorization.plots import read_csv_log, save_loss_curves
from data.pipeline import parse_dataset, pretext_dataset


SUMMARY_FILE = "train_summary.json"


def _adam(config, precision):
    optimizer = keras.optimizers.Adam(config.lr, beta_1=config.beta_1)
    return keras.optimizers.LossScaleOptimizer(optimizer) if precision == "mixed_float16" else optimizer


def build_gan(config, strategy=None, dropout_rate=0.5):
    """G, D and their Adam optimizers, built in the strategy's scope, compiled and built (so that a
    backup can be restored into them). With several replicas, BatchNorm statistics are synchronized."""
    strategy = strategy or tf.distribute.get_strategy()
    precision = keras.mixed_precision.global_policy().name
    sync = strategy.num_replicas_in_sync > 1
    with strategy.scope():
        gan = ColorizationGAN(
            build_generator(config.image_size, config.base_filters, synchronized_bn=sync,
                            dropout_rate=dropout_rate),
            build_discriminator(config.image_size, config.base_filters, synchronized_bn=sync),
        )
        gan.compile(g_optimizer=_adam(config, precision), d_optimizer=_adam(config, precision),
                    l1_weight=config.l1_weight, jit_compile=config.jit_compile,
                    steps_per_execution=config.steps_per_execution)
        gan.build()
    return gan


def build_l1(config, strategy=None):
    """The generator alone with Adam, trained on L1 (the ablation without a discriminator)."""
    strategy = strategy or tf.distribute.get_strategy()
    precision = keras.mixed_precision.global_policy().name
    with strategy.scope():
        model = L1Colorizer(build_generator(config.image_size, config.base_filters,
                                            synchronized_bn=strategy.num_replicas_in_sync > 1))
        model.compile(optimizer=_adam(config, precision), jit_compile=config.jit_compile,
                      steps_per_execution=config.steps_per_execution)
        model.build()
    return model


def build_colorizer(config, strategy=None, train_ds=None, run_dir=None):
    """The model that `config.objective` trains, compiled and built."""
    if config.objective not in OBJECTIVES:
        raise ValueError(f"--objective must be one of {OBJECTIVES}, received {config.objective!r}.")
    if config.objective == "gan":
        return build_gan(config, strategy)
    if config.objective == "l1":
        return build_l1(config, strategy)
    if config.objective == "classification":
        return build_classification(config, strategy, train_ds, run_dir)
    return build_multitask(config, strategy)


def build_classification(config, strategy=None, train_ds=None, run_dir=None):
    """Zhang et al.'s colorizer. The ab prior is estimated in one streaming pass over
    `config.prior_batches` training batches and saved (with the bins and weights) as
    `zhang_stats.json` in the run folder; a resumed run reads it back."""
    from cgan_colorization import zhang

    strategy = strategy or tf.distribute.get_strategy()
    path = os.path.join(run_dir, ZHANG_STATS_FILE) if run_dir else None
    if path and os.path.isfile(path):
        stats = zhang.load_zhang_stats(path)
        bins, weights = stats.bins, stats.weights
    else:
        bins = zhang.ab_gamut_bins()
        prior = zhang.ab_prior(train_ds, bins, max_batches=config.prior_batches)
        weights = zhang.rebalancing_weights(prior)
        if path:
            zhang.save_zhang_stats(path, bins, prior, weights, num_bins=len(bins),
                                   paper_num_bins=zhang.PAPER_NUM_BINS, prior_batches=config.prior_batches)
    replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        network = zhang.build_classification_generator(config.image_size, config.base_filters, len(bins),
                                                       synchronized_bn=replicas > 1)
        model = ClassificationColorizer(network, bins, weights, config.temperature,
                                        global_batch_size=config.batch_size if replicas > 1 else None)
        model.compile(optimizer=_adam(config, keras.mixed_precision.global_policy().name),
                      jit_compile=config.jit_compile, steps_per_execution=config.steps_per_execution)
        model.build()
    return model


def build_multitask(config, strategy=None):
    """One U-Net with a colour head and a segmentation head, trained jointly (Dabholkar's
    multi-task colorizer); the colour part saves and transfers exactly as the generator does."""
    from cgan_colorization.multitask import MultitaskColorizer, build_mobilenet_unet, build_multitask_unet

    check_backbone(config)
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        if config.backbone == "mobilenetv2":  # the seed's model: Y in, UV and the mask out, MSE
            network = build_mobilenet_unet(config.image_size, num_outputs=2, weights=config.backbone_weights or None,
                                           seg_classes=segmentation_classes(config), seed=config.seed)
        else:
            network = build_multitask_unet(config.image_size, config.base_filters, segmentation_classes(config),
                                           synchronized_bn=strategy.num_replicas_in_sync > 1)
        model = MultitaskColorizer(network)
        model.compile(optimizer=_adam(config, keras.mixed_precision.global_policy().name),
                      color_weight=config.color_weight, seg_weight=config.seg_weight,
                      jit_compile=config.jit_compile, steps_per_execution=config.steps_per_execution)
    return model


def segmentation_classes(config):
    """Mask classes of the multitask objective's data: background + K scenes classes, or the pets' 3."""
    return 3 if config.dataset == "pets" else config.num_classes + 1


def _datasets(config, source, skip_batches):
    common = dict(image_size=config.image_size, batch_size=config.batch_size, seed=config.seed,
                  num_classes=config.num_classes, drop_greyscale=not config.keep_greyscale,
                  with_masks=config.objective == "multitask", color_space=color_space(config.backbone))
    train = pretext_dataset(source, "train", skip_batches=skip_batches, resize_mode=config.resize_mode,
                            random_crop=config.random_crop, flip=config.flip, **common)
    val = pretext_dataset(source, "val", val_size=config.val_size, **common)
    # Each host reads its own share of the batches (the sources are streams, not sharded files).
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return train.with_options(options), val.with_options(options)


def _callbacks(config, run_dir, sample, source, steps_done):
    callbacks = [
        cb.StepBackupAndRestore(os.path.join(run_dir, "backup"), config.backup_every, steps_done),
        cb.GeneratorCheckpoint(run_dir),
        cb.SampleGrid(*sample, os.path.join(run_dir, "samples"), color_space=color_space(config.backbone)),
        keras.callbacks.CSVLogger(os.path.join(run_dir, "log.csv"), append=True),
        keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard"), write_graph=False),
        keras.callbacks.TerminateOnNaN(),
    ]
    if source.stats is not None:
        callbacks.append(cb.DecodeStatsLogger(source.stats))
    return callbacks


def train(config, extra_callbacks=(), verbose="auto"):
    """Trains (or resumes) the colorization cGAN described by `config` in `config.out`.

    A run folder that holds a backup is resumed at the step of its last backup; otherwise the run
    starts afresh. Returns the path of the run folder.
    """
    check_backbone(config)
    strategy = make_strategy(config.strategy)
    precision = set_precision(config.mixed_precision)
    # Only the chief writes the run folder; other workers of a multi-worker run write beside it.
    run_dir = config.out if is_chief() else os.path.join(config.out, f".worker-{worker_index()}")
    summary_path = os.path.join(run_dir, SUMMARY_FILE)
    backup_dir = os.path.join(run_dir, "backup")
    if os.path.isfile(summary_path) and not os.path.isdir(backup_dir):
        raise ValueError(f"{run_dir} already holds a finished run: pass another --out, or delete the folder "
                         "to train again.")
    # Finite validation sets of unknown length make Keras warn once per fit; that is expected here.
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    keras.utils.set_random_seed(config.seed)
    source = parse_dataset(config.dataset, config.val_fraction, config.seed)
    steps = config.steps_per_epoch or max(1, source.num_train // config.batch_size)
    epoch, step = cb.read_resume_point(backup_dir)
    if step >= steps:  # the backup was taken at the very end of an epoch
        epoch, step = epoch + 1, 0
    if (epoch, step) == (0, 0):
        for stale in ("log.csv", "tensorboard", "samples", "best.json"):
            path = os.path.join(run_dir, stale)
            shutil.rmtree(path) if os.path.isdir(path) else os.path.exists(path) and os.remove(path)
    else:
        print(f"Resuming {run_dir} at epoch {epoch + 1}, step {step} of {steps}.")
    save_config(config, run_dir, steps_per_epoch_resolved=steps, precision=precision,
                replicas=strategy.num_replicas_in_sync)

    train_ds, val_ds = _datasets(config, source, skip_batches=epoch * steps + step)
    gan = build_colorizer(config, strategy, train_ds, run_dir)
    sample = cb.first_batch(val_ds, config.sample_count)
    start = time.time()
    if step:  # finish the interrupted epoch first, with the steps it had left
        gan.fit(train_ds, initial_epoch=epoch, epochs=epoch + 1, steps_per_epoch=steps - step,
                validation_data=val_ds, verbose=verbose, shuffle=False,
                callbacks=_callbacks(config, run_dir, sample, source, step) + list(extra_callbacks))
        train_ds = train_ds.skip(steps - step)
        epoch += 1
    if epoch < config.epochs:
        gan.fit(train_ds, initial_epoch=epoch, epochs=config.epochs, steps_per_epoch=steps,
                validation_data=val_ds, verbose=verbose, shuffle=False,
                callbacks=_callbacks(config, run_dir, sample, source, 0) + list(extra_callbacks))
    if config.objective in ("gan", "l1"):  # a plain L -> ab generator, loadable without any config
        gan.network.save(os.path.join(run_dir, "generator.keras"))
    _plot_losses(run_dir)
    with open(summary_path, "w") as f:
        json.dump({"epochs": config.epochs, "steps_per_epoch": steps,
                   "optimizer_steps": int((getattr(gan, "g_optimizer", None) or gan.optimizer).iterations),
                   "seconds_last_session": round(time.time() - start, 1)}, f, indent=2)
    shutil.rmtree(backup_dir, ignore_errors=True)
    return run_dir


def _plot_losses(run_dir):
    log = read_csv_log(os.path.join(run_dir, "log.csv"))
    series = {k: v for k, v in log.items() if k in ("g_l1", "val_g_l1")}
    if series:
        save_loss_curves(series, os.path.join(run_dir, "loss_l1.png"), "generator L1 (ab, normalized)")
    series = {k: v for k, v in log.items() if k in ("g_gan", "d_loss", "d_real", "d_fake")}
    if series:
        save_loss_curves(series, os.path.join(run_dir, "loss_adversarial.png"), "adversarial losses")
