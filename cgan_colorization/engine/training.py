"""Training a colorizer: from a `TrainConfig` to a run folder with weights, logs and samples."""

import contextlib
import dataclasses
import json
import os
import shutil
import time
import warnings

import keras
import numpy as np
import tensorflow as tf

from cgan_colorization.engine import callbacks as cb
from cgan_colorization.engine import runlock
from cgan_colorization.engine.config import check_config, parse_steps, save_config
from cgan_colorization.engine.distribute import (in_cluster, is_chief, make_strategy, set_precision, weights_digest,
                                         worker_folder, worker_index)
from cgan_colorization.engine.plots import read_csv_log, save_loss_curves
from cgan_colorization.pretexts.pretext import steps_per_execution
from data.cache import MANIFEST
from data.diskfull import DiskFullError, as_disk_full, is_disk_full, write_text
from data.pipeline import SHARDABLE_KINDS, WorkerShard, cached_source, parse_dataset, pretext_dataset


SUMMARY_FILE = "train_summary.json"
# Options a resumed run may change: how often it backs up and how long it waits for its peers, not what it learns.
RESUMABLE_OPTIONS = ("out", "backup_every", "backup_minutes", "collective_timeout", "probe", "probe_bank",
                     "probe_queries")  # what a resumed run may change: none of it changes the weights
VALIDATION_IN_MEMORY_BYTES = 512 * 2**20


def changed_options(config, run_dir):
    """[(option, value in the run folder's config.json, value now)] for every option that differs."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        saved = json.load(f)
    return [(name, saved[name], value) for name, value in dataclasses.asdict(config).items()
            if name not in RESUMABLE_OPTIONS and name in saved and saved[name] != value]


def build_colorizer(config, strategy=None, train_ds=None, run_dir=None):
    """The model that the run's pretext (its objective on its backbone) trains, compiled and built."""
    return check_config(config).implementation().build(config, strategy, train_ds, run_dir)


def steps_per_epoch(config, source):
    """The run's epoch length: --steps-per-epoch, or one pass over the training images."""
    if config.steps_per_epoch:
        return config.steps_per_epoch
    if source.num_train is None:
        raise ValueError(f"--dataset {source.spec} is an endless stream, so an epoch cannot be one pass over it: "
                         "give --steps-per-epoch N (the fast preset uses 100).")
    return max(1, source.num_train // config.batch_size)


def _datasets(config, source, skip_batches):
    entry = check_config(config)
    if entry.needs_labels:  # (input, labels) pairs of a labelled set: the pretext module reads them
        train, val = entry.implementation().datasets(config, skip_batches)
        return _auto_shard(train), _auto_shard(held_in_memory(val, config))
    common = dict(image_size=config.image_size, batch_size=config.batch_size, seed=config.seed,
                  num_classes=config.num_classes, drop_greyscale=not config.keep_greyscale,
                  with_masks=entry.needs_masks, color_space=entry.color_space)
    train = pretext_dataset(source, "train", skip_batches=skip_batches, resize_mode=config.resize_mode,
                            random_crop=config.random_crop, flip=config.flip, **common)
    val = pretext_dataset(source, "val", val_size=config.val_size, **common)
    return _auto_shard(train), _auto_shard(held_in_memory(val, config))


def held_in_memory(val, config, limit_bytes=VALIDATION_IN_MEMORY_BYTES):
    """The validation set of a run: at most `--val-size` held-out images (whatever the split holds:
    Tiny ImageNet's is 5,058 photos, and decoding them all took a third of every epoch), read once
    and kept in memory when they fit in `limit_bytes`, so that no decoding pipeline lives on between
    validations (Keras drops the previous one at the start of the next, which waited seconds for its
    read-ahead threads). Larger sets (the paper preset's 4,000 images at 256 px) stay a stream."""
    val = val.take(-(-config.val_size // config.batch_size))
    if config.val_size * config.image_size ** 2 * 4 * 4 > limit_bytes:  # L, two colour channels, a mask; float32
        return val
    batches = list(val.as_numpy_iterator())
    if not batches:
        return val
    joined = tf.nest.map_structure(lambda *parts: np.concatenate(parts), *batches)
    return tf.data.Dataset.from_tensor_slices(joined).batch(config.batch_size)


def _worker_train(config, source, strategy, skip_batches):
    """The training stream of a multi-worker run, one pipeline per worker that reads only its own
    photos (`data.pipeline.WorkerShard`), or None where each worker must read the whole stream and
    keep its share of the batches (TFDS streams, labelled pretexts; `_auto_shard`)."""
    entry = check_config(config)
    if (not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or entry.needs_labels
            or source.kind not in SHARDABLE_KINDS):
        return None
    if config.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"--batch-size {config.batch_size} (the global batch) must be a multiple of the "
                         f"{strategy.num_replicas_in_sync} replicas of the run.")

    def pipeline(context):
        shard = WorkerShard(context.input_pipeline_id, context.num_input_pipelines, config.batch_size)
        return pretext_dataset(
            source, "train", image_size=config.image_size, seed=config.seed, num_classes=config.num_classes,
            batch_size=context.get_per_replica_batch_size(config.batch_size), skip_batches=skip_batches,
            resize_mode=config.resize_mode, random_crop=config.random_crop, flip=config.flip,
            drop_greyscale=not config.keep_greyscale, with_masks=entry.needs_masks, color_space=entry.color_space,
            shard=shard)

    what = {"synthetic": "its slot of every global batch of scenes", "files": "its share of the photo files",
            "cache": "its share of the cache blocks"}[source.kind]
    print(f"worker {worker_index()}: reads only its own part of the training data ({what}).")
    return strategy.distribute_datasets_from_function(pipeline)


def _fit_input(config, source, strategy, train_ds, skip_batches):
    """What `fit` reads from step `skip_batches` on: the per-worker pipelines of a multi-worker run,
    else `train_ds` (already positioned at that step)."""
    per_worker = _worker_train(config, source, strategy, skip_batches)
    return train_ds if per_worker is None else per_worker


def _auto_shard(dataset):
    """Each host reads the whole stream and keeps its share of the batches (for streams that cannot
    be split by file: `_worker_train` splits the others)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _callbacks(config, run_dir, sample, source, steps_done, probe=None):
    """`sample`: the fixed (grey, colour) batch of the sample grids, None for a pretext that does not colorize;
    `probe`: the run's feature probe callback (first, so that its scores reach the checkpoint and the logs)."""
    entry = check_config(config)
    grids = [] if sample is None else [cb.SampleGrid(*sample, os.path.join(run_dir, "samples"),
                                                     color_space=entry.color_space,
                                                     log_dir=os.path.join(run_dir, "tensorboard", "samples"))]
    callbacks = [
        cb.StepBackupAndRestore(os.path.join(run_dir, "backup"), config.backup_every, steps_done,
                                save_minutes=config.backup_minutes),
        cb.GeneratorCheckpoint(run_dir, *((probe.key, "max") if config.monitor == "probe" else ())),
        *grids,
        keras.callbacks.CSVLogger(os.path.join(run_dir, "log.csv"), append=True),
        keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard"), write_graph=False),
        keras.callbacks.TerminateOnNaN(),
    ]
    if config.keep_steps:
        callbacks.insert(2, cb.KeepSteps(run_dir, parse_steps(config.keep_steps)))
    if probe is not None:
        callbacks.insert(0, probe)
    if source.stats is not None and not entry.needs_labels:  # labelled sets count no decodes
        callbacks.append(cb.DecodeStatsLogger(source.stats))
    return callbacks


def train(config, extra_callbacks=(), verbose="auto", probe=None):
    """Trains (or resumes) the colorization cGAN described by `config` in `config.out`.

    A run folder that holds a backup is resumed at the step of its last backup; otherwise the run
    starts afresh. Returns the path of the run folder. `probe(config, run_dir)` makes the callback of
    `--probe` (`transfer.online_probe.make_probe`, which the scripts pass: a feature probe belongs to the
    transfer layer).

    In a multi-worker run only the chief writes `config.out`. Every other worker runs the same
    program (its saves read synchronized variables together with the chief's) into a scratch folder
    `OUT/.worker-N` (`distribute.worker_folder`), removed when the run ends, and resumes from the
    chief's backup, so that all workers restart at the same step.

    The chief holds the lock of `config.out` for the whole run (`runlock`: a second process on the
    folder is a `RunLocked` error). A write that finds the disk full stops the run with a `DiskFullError`
    that says what could not be written and which backup the run resumes from.
    """
    check_config(config)
    if config.probe and probe is None:
        raise ValueError("--probe needs the feature probe of the transfer package: run train_colorizer.py, or call "
                         "train(config, probe=transfer.online_probe.make_probe).")
    chief = is_chief()
    try:
        with runlock.hold(config.out) if chief else contextlib.nullcontext(), worker_folder(config.out) as run_dir:
            return _train(config, run_dir, chief, extra_callbacks, verbose, probe)
    except Exception as error:  # noqa: BLE001 - a full disk becomes one sentence; anything else is re-raised
        if isinstance(error, runlock.RunLocked) or not is_disk_full(error) or \
                (isinstance(error, DiskFullError) and error.kept):  # e.g. a cache build's, which says what it keeps
            raise
        raise as_disk_full(error, resume_clause(config.out), config.out) from error


def resume_clause(out):
    """What a run stopped by a full disk keeps, and how it goes on."""
    backup_dir = os.path.join(out, "backup")
    try:
        record = cb.usable_backup(backup_dir)
    except cb.BackupError:
        record = None
    if record is None:
        return "the run stopped before its first backup: free space and run the same command to start it again"
    epoch, step = int(record["epoch"]), int(record["step"])
    when = f"epoch {epoch + 1}, step {step}" if step else f"the end of epoch {epoch}"
    return (f"the run stopped and keeps its last backup {os.path.join(backup_dir, record['weights'])} ({when}): "
            "free space and run the same command to resume from it")


def _train(config, run_dir, chief, extra_callbacks, verbose, probe_factory):
    strategy = make_strategy(config.strategy, config.collective_timeout)
    precision = set_precision(config.mixed_precision, strategy.num_replicas_in_sync)
    summary_path = os.path.join(config.out, SUMMARY_FILE)
    backup_dir = os.path.join(config.out, "backup")  # the chief's: the one every worker resumes from
    if os.path.isfile(summary_path) and not os.path.isdir(backup_dir):
        raise ValueError(f"{config.out} already holds a finished run: pass another --out, or delete the folder "
                         "to train again.")
    changed = changed_options(config, config.out) if cb.read_resume_point(backup_dir) != (0, 0) else []
    if changed:
        listed = ", ".join(f"--{name.replace('_', '-')} {new} (the run has {old})" for name, old, new in changed)
        raise ValueError(f"{config.out} holds an interrupted run with other options: {listed}; run its own "
                         "command to resume it, or pass another --out.")
    # Finite validation sets of unknown length make Keras warn once per fit; that is expected here.
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    keras.utils.set_random_seed(config.seed)
    source = parse_dataset(config.dataset, config.val_fraction, config.seed,
                           max_photos_per_class=config.max_photos_per_class)
    if config.cache:  # a multi-worker run reads a cache, it does not build one
        building = not in_cluster() and not os.path.isfile(os.path.join(config.cache, MANIFEST))
        with runlock.hold(config.cache, flag="--cache") if building else contextlib.nullcontext():
            source = cached_source(source, config.cache, image_size=config.image_size,
                                   resize_mode=config.resize_mode, drop_greyscale=not config.keep_greyscale,
                                   color_space=check_config(config).color_space, build=not in_cluster(),
                                   val_fraction=config.val_fraction, seed=config.seed)
    steps = steps_per_epoch(config, source)
    per_call = steps_per_execution(config, steps)
    epoch, step = cb.read_resume_point(backup_dir)
    if not chief:  # restore from a copy of the chief's backup; keep writing backups beside it
        shutil.rmtree(os.path.join(run_dir, "backup"), ignore_errors=True)
        if os.path.isdir(backup_dir):
            shutil.copytree(backup_dir, os.path.join(run_dir, "backup"))
    if step >= steps:  # the backup was taken at the very end of an epoch
        epoch, step = epoch + 1, 0
    if (epoch, step) == (0, 0):
        for stale in ("log.csv", "tensorboard", "samples", "best.json", "last.json"):
            path = os.path.join(run_dir, stale)
            shutil.rmtree(path) if os.path.isdir(path) else os.path.exists(path) and os.remove(path)
    else:
        print(f"Resuming {run_dir} at epoch {epoch + 1}, step {step} of {steps}.")
    save_config(config, run_dir, steps_per_epoch_resolved=steps, precision=precision,
                replicas=strategy.num_replicas_in_sync,
                **({"cache_manifest": source.cache.manifest} if source.kind == "cache" else {}))

    config = dataclasses.replace(config, steps_per_execution=per_call)  # saved above as given
    train_ds, val_ds = _datasets(config, source, skip_batches=epoch * steps + step)
    gan = build_colorizer(config, strategy, train_ds, run_dir)
    if epoch >= config.epochs:  # its last backup closes the last epoch: it stopped while writing its final files
        _restore_last_epoch(gan, run_dir, config.epochs)
    sample = cb.first_batch(val_ds, config.sample_count) if check_config(config).colorizes else None
    probe = probe_factory(config, run_dir) if config.probe else None
    start, earlier = time.time(), cb.trained_seconds(backup_dir)  # earlier sessions, up to their last backup
    if step:  # finish the interrupted epoch first, with the steps it had left
        gan.fit(_fit_input(config, source, strategy, train_ds, epoch * steps + step), initial_epoch=epoch,
                epochs=epoch + 1, steps_per_epoch=steps - step,
                validation_data=val_ds, verbose=verbose, shuffle=False,
                callbacks=_callbacks(config, run_dir, sample, source, step, probe) + list(extra_callbacks))
        train_ds = train_ds.skip(steps - step)
        epoch += 1
    if epoch < config.epochs:
        gan.fit(_fit_input(config, source, strategy, train_ds, epoch * steps), initial_epoch=epoch,
                epochs=config.epochs, steps_per_epoch=steps,
                validation_data=val_ds, verbose=verbose, shuffle=False,
                callbacks=_callbacks(config, run_dir, sample, source, 0, probe) + list(extra_callbacks))
    if gan.saves_keras_model:  # a plain L -> ab generator, loadable without any config
        cb.save_model_file(gan.network, os.path.join(run_dir, "generator.keras"), "the generator")
    _plot_losses(run_dir)
    digest = weights_digest(gan)
    print(f"worker {worker_index()}: final weights sha256 {digest}")  # equal on every worker of a run
    if not chief:  # its scratch folder goes with `worker_folder`
        return config.out
    write_text(summary_path, json.dumps({"epochs": config.epochs, "steps_per_epoch": steps,
                                         "optimizer_steps": int(gan.optimizer_steps), "weights_sha256": digest,
                                         "replicas": strategy.num_replicas_in_sync,
                                         "seconds_last_session": round(time.time() - start, 1),
                                         "seconds": round(earlier + time.time() - start, 1)}, indent=2),
               "the run summary")
    shutil.rmtree(backup_dir, ignore_errors=True)
    return run_dir


def _restore_last_epoch(gan, run_dir, epochs):
    """Restores the backup taken at the end of the last epoch and writes that epoch's generator from it,
    as `GeneratorCheckpoint` does (the files a full disk or a kill stopped), before the final files."""
    restore = cb.StepBackupAndRestore(os.path.join(run_dir, "backup"), 0)
    restore.set_model(gan)
    restore.on_train_begin()
    checkpoint = cb.GeneratorCheckpoint(run_dir)
    checkpoint.set_model(gan)
    checkpoint.on_epoch_end(epochs - 1)


def _plot_losses(run_dir):
    log = read_csv_log(os.path.join(run_dir, "log.csv"))
    series = {k: v for k, v in log.items() if k in ("g_l1", "val_g_l1")}
    if series:
        save_loss_curves(series, os.path.join(run_dir, "loss_l1.png"), "generator L1 (ab, normalized)")
    series = {k: v for k, v in log.items() if k in ("g_gan", "d_loss", "d_real", "d_fake")}
    if series:
        save_loss_curves(series, os.path.join(run_dir, "loss_adversarial.png"), "adversarial losses")
