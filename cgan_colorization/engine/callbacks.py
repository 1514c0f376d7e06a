"""Keras callbacks of a colorizer run: sample grids, generator checkpoints, step-exact backups."""

import contextlib
import io
import json
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from data.color import join_rgb
from data.diskfull import remove_quietly, write_atomically, write_text
from cgan_colorization.engine.plots import save_sample_grid

RESUME_FILE = "resume.json"


SAMPLES_TAG = "samples/grey_colorized_original"  # the TensorBoard image of each epoch's grid


def tiled_grid(gray_rgb, colorized_rgb, original_rgb):
    """One image [N*H, 3*W, 3] in [0, 1]: a row per example, grey input | colorization | original."""
    return np.clip(np.concatenate([np.concatenate(row, axis=1) for row in zip(gray_rgb, colorized_rgb, original_rgb)],
                                  axis=0), 0.0, 1.0)


class SummaryCallback(keras.callbacks.Callback):
    """A callback with its own TensorBoard folder (`log_dir`, None: none): `summaries()` is the writer's
    context, opened on first use, flushed after each use and closed when training ends."""

    def __init__(self, log_dir=None):
        super().__init__()
        self.log_dir = log_dir
        self._writer = None

    @contextlib.contextmanager
    def summaries(self):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default():
            yield
        self._writer.flush()  # seen by a TensorBoard that is watching the run

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class SampleGrid(SummaryCallback):
    """After every epoch, saves grey input / colorization / original for a fixed batch as a PNG and,
    with `log_dir`, as a TensorBoard image (`SAMPLES_TAG`, step = epoch number) beside the scalars.
    `gray` and `ab` are the model's input and colour target in `color_space` ("lab" or "yuv")."""

    def __init__(self, gray, ab, out_dir, color_space="lab", log_dir=None):
        super().__init__(log_dir)
        self.gray = tf.convert_to_tensor(gray)
        self.ab = tf.convert_to_tensor(ab)
        self.out_dir = out_dir
        self.color_space = color_space
        self.original = join_rgb(self.gray, self.ab, color_space).numpy()
        self.grey_rgb = join_rgb(self.gray, tf.zeros_like(self.ab), color_space).numpy()

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.out_dir, exist_ok=True)
        fake_ab = self.model.predict_ab(self.gray)
        path = os.path.join(self.out_dir, f"epoch_{epoch + 1:03d}.png")
        colorized = join_rgb(self.gray, fake_ab, self.color_space).numpy()
        save_sample_grid(self.grey_rgb, colorized, self.original, path, title=f"epoch {epoch + 1}")
        if self.log_dir:
            with self.summaries():
                tf.summary.image(SAMPLES_TAG, tiled_grid(self.grey_rgb, colorized, self.original)[None], step=epoch + 1,
                                 description="grey input | colorization | original, a fixed held-out batch")


class GeneratorCheckpoint(keras.callbacks.Callback):
    """Each epoch, writes the colorizer network's weights (`generator.weights.h5`, and the
    discriminator's where there is one) with `last.json` (its epoch), and the network with the best
    `monitor` so far (`generator_best.weights.h5`, with `best.json`; by default the model's own
    `monitor`, e.g. validation L1, lowest; `mode="max"` keeps the highest, e.g. a feature probe's
    score). A resumed run keeps the best of the epochs before the restart."""

    def __init__(self, run_dir, monitor=None, mode="min"):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', received {mode!r}.")
        self.run_dir = run_dir
        self.monitor = monitor
        self.sign = 1.0 if mode == "min" else -1.0  # the best is the lowest sign * value
        self.best = math.inf
        best = _read_json(os.path.join(run_dir, "best.json"))
        if best:
            self.monitor = self.monitor or next((k for k in best if k != "epoch"), None)
            self.best = self.sign * float(best[self.monitor]) if self.monitor in best else math.inf

    def on_epoch_end(self, epoch, logs=None):
        model = self.model
        self.monitor = self.monitor or getattr(model, "monitor", "val_g_l1")
        value = (logs or {}).get(self.monitor)
        record = {"epoch": epoch + 1, **({self.monitor: float(value)} if value is not None else {})}
        save_model_file(model.network, os.path.join(self.run_dir, "generator.weights.h5"), "the generator weights")
        if getattr(model, "discriminator", None) is not None:
            save_model_file(model.discriminator, os.path.join(self.run_dir, "discriminator.weights.h5"),
                            "the discriminator weights")
        _write_json(os.path.join(self.run_dir, "last.json"), record)
        if value is not None and self.sign * float(value) < self.best:
            self.best = self.sign * float(value)
            save_model_file(model.network, os.path.join(self.run_dir, "generator_best.weights.h5"),
                            "the best generator's weights")
            _write_json(os.path.join(self.run_dir, "best.json"), record)


KEPT_STEP_FILE = "generator_step{:06d}.weights.h5"  # a generator kept at an optimizer step (--keep-steps)
KEPT_STEPS_RECORD = "kept_steps.json"


class KeepSteps(keras.callbacks.Callback):
    """Keeps the colorizer network as it is after each of the optimizer steps `steps` (counted over
    the whole run, resumes included) in `KEPT_STEP_FILE`, with its epoch and step in
    `KEPT_STEPS_RECORD`: one run at a constant learning rate then also gives the shorter runs'
    generators (step 3,000 of a 12,000-step run is a 3,000-step run), at no extra training. With
    several steps per call, a kept step is the first call's end at or past it (its record says which)."""

    def __init__(self, run_dir, steps):
        super().__init__()
        self.run_dir = run_dir
        self.steps = sorted(set(int(s) for s in steps))
        self._epoch, self._kept = 0, {}

    def on_train_begin(self, logs=None):
        self._kept = _read_json(os.path.join(self.run_dir, KEPT_STEPS_RECORD))  # a resumed run's

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        pending = [s for s in self.steps if str(s) not in self._kept]
        if not pending:
            return
        done = int(self.model.optimizer_steps)
        due = [s for s in pending if s <= done]
        if not due:
            return
        kept = self._kept
        for step in due:
            name = KEPT_STEP_FILE.format(step)
            save_model_file(self.model.network, os.path.join(self.run_dir, name), f"the generator of step {step}")
            kept[str(step)] = {"file": name, "optimizer_step": done, "epoch": self._epoch + 1}
        _write_json(os.path.join(self.run_dir, KEPT_STEPS_RECORD), kept)


def _read_json(path):
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _write_json(path, payload):
    """Writes JSON under a temporary name and renames it, so a kill or a full disk never leaves half a file."""
    write_text(path, json.dumps(payload), "the record")


def save_model_file(model, path, what="the weights"):
    """Writes `model`'s weights (`path` ending in `.weights.h5`) or the whole model (`.keras`) as Keras
    does, but serialized in memory first, then written whole under a temporary name and renamed
    (`write_atomically`). A full disk thus never reaches HDF5, whose failed writes leave it broken (each
    object freed afterwards prints a traceback, and a segmentation fault was seen), and never leaves half
    a file: it is a `DiskFullError` naming `what` and its size."""
    from keras.src.saving import saving_lib  # Keras' own writers, given a buffer (Keras is pinned in setup.cfg)

    buffer = io.BytesIO()
    if path.endswith(".keras"):
        saving_lib.save_model(model, buffer)
    elif path.endswith(".weights.h5"):
        store = saving_lib.H5IOStore(buffer, mode="w")  # what `model.save_weights(path)` writes, in memory
        saving_lib._save_state(model, weights_store=store, assets_store=None, inner_path="", visited_saveables=set())
        store.close()
    else:
        raise ValueError(f"a model file ends in .weights.h5 or .keras, received {path!r}.")
    write_atomically(path, buffer.getbuffer(), what)


class BackupError(ValueError):
    """No backup of an interrupted run can be read (its message is one sentence)."""


def _readable_weights(path):
    """Whether the HDF5 weights file at `path` opens and every array in it reads back whole."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            arrays = []
            f.visititems(lambda name, item: arrays.append(item) if isinstance(item, h5py.Dataset) else None)
            for array in arrays:
                array[()]
        return True
    except Exception:  # noqa: BLE001 - truncated, overwritten or not HDF5 at all: not readable
        return False


def usable_backup(backup_dir):
    """The record of the newest backup in `backup_dir` whose weights read back whole (the last one,
    else the one before it), None when there is no backup; a `BackupError` when there are backups and
    none can be read. A record holds the weights file, the epoch, the step and the random state."""
    record = _read_json(os.path.join(backup_dir, RESUME_FILE))
    if not record:
        return None
    candidates = [record] + ([record["previous"]] if record.get("previous") else [])
    for i, candidate in enumerate(candidates):
        if _readable_weights(os.path.join(backup_dir, candidate["weights"])):
            if i:
                print(f"warning: the last backup {os.path.join(backup_dir, record['weights'])} cannot be read "
                      f"(written when the run was killed?); resuming from the one before it.", flush=True)
            return candidate
    raise BackupError(f"no backup in {backup_dir} can be read ({', '.join(c['weights'] for c in candidates)} are "
                      f"damaged): delete {backup_dir} to start the run over.")


class StepBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that also records how many steps of the current epoch are done, so a run
    killed mid-epoch resumes at the step where its last backup was taken, not at the epoch's start.

    A backup is taken every `save_every` steps (0: never by steps), every `save_minutes` minutes of
    wall time (0: never by time), and at every epoch end. Each is written whole under a new name
    beside the previous one, then `resume.json` is replaced atomically to point at it (and at the one
    before), so a kill at any moment leaves a readable backup; the restore takes the newest backup
    whose weights read back whole (`usable_backup`). Restored: both networks, both optimizers, the
    epoch, the step (`read_resume_point`, which the trainer uses to finish the interrupted epoch), and
    the model's random state (the seed generators of its dropout layers), so a resumed run draws the
    dropout masks the uninterrupted one would. Each backup also records the training wall time up to it,
    over every session (`trained_seconds`): a killed session's time counts up to its last backup.
    """

    def __init__(self, backup_dir, save_every, steps_done=0, save_minutes=0.0):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=False)
        self.save_every, self.save_minutes = save_every, save_minutes
        self._steps_offset = steps_done
        self._steps_in_epoch = steps_done
        self._since_save, self._saved_at = 0, time.time()
        self.backup_seconds = []  # wall time of each backup written, for the benchmark
        self._seconds_before, self._session_start = 0.0, time.time()

    def _load_model(self):
        record = usable_backup(self.backup_dir)
        if record is None:
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.backup_dir, record["weights"]))
        self.model._initial_epoch = record["epoch"]
        self._seconds_before = float(record.get("seconds", 0.0))
        for variable, value in zip(random_state(self.model), record.get("random_state") or [], strict=False):
            variable.assign(np.asarray(value, dtype=variable.dtype))

    def on_train_begin(self, logs=None):
        self._load_model()  # a damaged backup falls back to the one before it, in `usable_backup`
        self._saved_at = self._session_start = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        done = self._steps_offset + batch + 1  # with steps_per_execution > 1, `batch` is the last step run
        self._since_save += done - self._steps_in_epoch
        self._steps_in_epoch = done
        by_steps = self.save_every and self._since_save >= self.save_every
        by_time = self.save_minutes and time.time() - self._saved_at >= 60 * self.save_minutes
        if by_steps or by_time:
            self._save_model()

    def on_epoch_end(self, epoch, logs=None):
        self._steps_offset = self._steps_in_epoch = 0
        super().on_epoch_end(epoch, logs)  # sets the epoch and backs up: every epoch end is exact

    def _save_model(self):
        start = time.time()
        os.makedirs(self.backup_dir, exist_ok=True)
        path = os.path.join(self.backup_dir, RESUME_FILE)
        previous = _read_json(path)
        index = previous.get("index", 0) + 1
        name = f"backup-{index:06d}.weights.h5"
        try:  # written whole under a temporary name (a full disk leaves no part of it)
            save_model_file(self.model, os.path.join(self.backup_dir, name), "the backup")
            record = {"index": index, "weights": name, "epoch": self._current_epoch, "step": self._steps_in_epoch,
                      "seconds": round(self._seconds_before + time.time() - self._session_start, 1),
                      "random_state": [keras.ops.convert_to_numpy(v.value).tolist()
                                       for v in random_state(self.model)]}
            if previous:
                record["previous"] = {k: v for k, v in previous.items() if k != "previous"}
            _write_json(path, record)  # the switch: atomic, so a kill leaves the old record or the new one
        except BaseException:
            remove_quietly(os.path.join(self.backup_dir, name))  # never switched to: the previous backup is the one
            raise
        kept = {name, previous.get("weights")}
        for stale in os.listdir(self.backup_dir):
            if stale.endswith(".weights.h5") and stale not in kept:
                os.remove(os.path.join(self.backup_dir, stale))
        self._since_save, self._saved_at = 0, time.time()
        self.backup_seconds.append(self._saved_at - start)


def backup_weights(backup_dir):
    """The weights file of the backup a resumed run would start from."""
    record = usable_backup(backup_dir)
    return None if record is None else os.path.join(backup_dir, record["weights"])


def random_state(model):
    """The variables of `model` that hold random-number state (its seed generators), in order."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights and v.path.endswith("seed_generator_state")]


def trained_seconds(backup_dir):
    """The training wall time, over every session, up to the backup a resumed run starts from (0 for a new run)."""
    record = usable_backup(backup_dir)
    return float(record.get("seconds", 0.0)) if record else 0.0


def read_resume_point(backup_dir):
    """(epoch, step) where an interrupted run stopped (its newest readable backup), or (0, 0) for a new run."""
    record = usable_backup(backup_dir)
    return (int(record["epoch"]), int(record["step"])) if record else (0, 0)


class DecodeStatsLogger(keras.callbacks.Callback):
    """Prints one line per epoch on unreadable files skipped and greyscale photos dropped."""

    def __init__(self, stats):
        super().__init__()
        self.stats = stats

    def on_epoch_end(self, epoch, logs=None):
        print(f"epoch {epoch + 1}: {self.stats.summary()}")
        if logs is not None:
            for key, value in self.stats.as_dict().items():
                logs[f"files_{key}"] = float(value)


def first_batch(dataset, count):
    """The first `count` (grey input, colour target) pairs of a batched dataset, as numpy arrays."""
    gray, ab = [], []
    for g, a in dataset:
        a = a.get("ab", a.get("uv")) if isinstance(a, dict) else a
        gray.append(g.numpy())
        ab.append(a.numpy())
        if sum(len(x) for x in gray) >= count:
            break
    return np.concatenate(gray)[:count], np.concatenate(ab)[:count]
