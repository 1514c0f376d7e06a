"""Keras callbacks of a colorizer run: sample grids, generator checkpoints, step-exact backups."""

import json
import math
import os

import keras
import numpy as np
import tensorflow as tf

from data.color import join_rgb
from cgan_colorization.plots import save_sample_grid

RESUME_FILE = "resume.json"


SAMPLES_TAG = "samples/grey_colorized_original"  # the TensorBoard image of each epoch's grid


def tiled_grid(gray_rgb, colorized_rgb, original_rgb):
    """One image [N*H, 3*W, 3] in [0, 1]: a row per example, grey input | colorization | original."""
    return np.clip(np.concatenate([np.concatenate(row, axis=1) for row in zip(gray_rgb, colorized_rgb, original_rgb)],
                                  axis=0), 0.0, 1.0)


class SampleGrid(keras.callbacks.Callback):
    """After every epoch, saves grey input / colorization / original for a fixed batch as a PNG and,
    with `log_dir`, as a TensorBoard image (`SAMPLES_TAG`, step = epoch number) beside the scalars.
    `gray` and `ab` are the model's input and colour target in `color_space` ("lab" or "yuv")."""

    def __init__(self, gray, ab, out_dir, color_space="lab", log_dir=None):
        super().__init__()
        self.gray = tf.convert_to_tensor(gray)
        self.ab = tf.convert_to_tensor(ab)
        self.out_dir = out_dir
        self.color_space = color_space
        self.log_dir = log_dir
        self._writer = None
        self.original = join_rgb(self.gray, self.ab, color_space).numpy()
        self.grey_rgb = join_rgb(self.gray, tf.zeros_like(self.ab), color_space).numpy()

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.out_dir, exist_ok=True)
        fake_ab = self.model.predict_ab(self.gray)
        path = os.path.join(self.out_dir, f"epoch_{epoch + 1:03d}.png")
        colorized = join_rgb(self.gray, fake_ab, self.color_space).numpy()
        save_sample_grid(self.grey_rgb, colorized, self.original, path, title=f"epoch {epoch + 1}")
        if self.log_dir:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(self.log_dir)
            with self._writer.as_default():
                tf.summary.image(SAMPLES_TAG, tiled_grid(self.grey_rgb, colorized, self.original)[None], step=epoch + 1,
                                 description="grey input | colorization | original, a fixed held-out batch")
            self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class GeneratorCheckpoint(keras.callbacks.Callback):
    """Each epoch, writes the colorizer network's weights (`generator.weights.h5`, and the
    discriminator's where there is one) with `last.json` (its epoch), and the network with the lowest
    `monitor` so far (`generator_best.weights.h5`, with `best.json`; by default the model's own
    `monitor`, e.g. validation L1). A resumed run keeps the best of the epochs before the restart."""

    def __init__(self, run_dir, monitor=None):
        super().__init__()
        self.run_dir = run_dir
        self.monitor = monitor
        self.best = math.inf
        best = _read_json(os.path.join(run_dir, "best.json"))
        if best:
            self.monitor = self.monitor or next((k for k in best if k != "epoch"), None)
            self.best = float(best.get(self.monitor, math.inf))

    def on_epoch_end(self, epoch, logs=None):
        model = self.model
        self.monitor = self.monitor or getattr(model, "monitor", "val_g_l1")
        value = (logs or {}).get(self.monitor)
        record = {"epoch": epoch + 1, **({self.monitor: float(value)} if value is not None else {})}
        model.network.save_weights(os.path.join(self.run_dir, "generator.weights.h5"))
        if getattr(model, "discriminator", None) is not None:
            model.discriminator.save_weights(os.path.join(self.run_dir, "discriminator.weights.h5"))
        _write_json(os.path.join(self.run_dir, "last.json"), record)
        if value is not None and float(value) < self.best:
            self.best = float(value)
            model.network.save_weights(os.path.join(self.run_dir, "generator_best.weights.h5"))
            _write_json(os.path.join(self.run_dir, "best.json"), record)


def _read_json(path):
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _write_json(path, payload):
    """Writes JSON under a temporary name and renames it, so a kill never leaves half a file."""
    with open(path + ".tmp", "w") as f:
        json.dump(payload, f)
    os.replace(path + ".tmp", path)


class StepBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that also records how many steps of the current epoch are done, so a run
    killed mid-epoch resumes at the step where its last backup was taken, not at the epoch's start.

    Keras restores the weights (both networks and both optimizers) and the epoch; `read_resume_point`
    gives the step, which the trainer uses to finish the interrupted epoch with the remaining steps.
    The model's random state (the seed generators of its dropout layers, which are not weights) is
    saved and restored too, so a resumed run draws the dropout masks the uninterrupted one would.
    """

    def __init__(self, backup_dir, save_freq, steps_done=0):
        super().__init__(backup_dir, save_freq=save_freq, delete_checkpoint=False)
        self._steps_offset = steps_done
        self._steps_in_epoch = steps_done

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        saved = _read_json(os.path.join(self.backup_dir, RESUME_FILE)).get("random_state")
        if saved:
            for variable, value in zip(random_state(self.model), saved, strict=True):
                variable.assign(np.asarray(value, dtype=variable.dtype))

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._steps_in_epoch = self._steps_offset + batch + 1
        super().on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._steps_offset = self._steps_in_epoch = 0
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":  # also back up every epoch end, so the epoch count is exact
            self._save_model()

    def _save_model(self):
        super()._save_model()
        _write_json(os.path.join(self.backup_dir, RESUME_FILE),
                    {"epoch": self._current_epoch, "step": self._steps_in_epoch,
                     "random_state": [keras.ops.convert_to_numpy(v.value).tolist() for v in random_state(self.model)]})


def random_state(model):
    """The variables of `model` that hold random-number state (its seed generators), in order."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights and v.path.endswith("seed_generator_state")]


def read_resume_point(backup_dir):
    """(epoch, step) where an interrupted run stopped, or (0, 0) for a new run."""
    state = _read_json(os.path.join(backup_dir, RESUME_FILE))
    return (int(state["epoch"]), int(state["step"])) if state else (0, 0)


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
