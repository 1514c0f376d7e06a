"""Two-phase fine-tuning, one function for both downstream tasks (keras-io's transfer-learning recipe):
freeze the transferred layers -> fit -> unfreeze -> recompile -> fit."""

import dataclasses
import os

import keras


@dataclasses.dataclass
class Phase:
    """One stretch of fine-tuning: `epochs` at learning rate `lr`, transferred layers frozen or not."""

    epochs: int
    lr: float
    frozen: bool


class PhaseLogger(keras.callbacks.Callback):
    """Adds the phase's learning rate and frozen flag to each epoch's logs (and so to the CSV)."""

    def __init__(self, phase_index, phase):
        super().__init__()
        self.phase_index, self.phase = phase_index, phase

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(phase=float(self.phase_index + 1), lr=self.phase.lr, frozen=float(self.phase.frozen))


def set_frozen(model, layer_names, frozen):
    """Freezes (or unfreezes) the named layers. A frozen BatchNormalization layer runs in inference
    mode in Keras 3, so its moving statistics stay untouched as well as its weights."""
    for name in layer_names:
        model.get_layer(name).trainable = not frozen


def two_phase_finetune(model, train_data, val_data, phases, *, loss, metrics_factory, transferred=(),
                       log_dir=None, steps_per_epoch=None, verbose="auto", extra_callbacks=()):
    """Fits `model` through `phases` in order, recompiling with a fresh Adam for each phase.

    A from-scratch baseline is one phase with nothing frozen. `metrics_factory()` returns new metric
    objects for each compile. Epochs are numbered continuously across phases; with `log_dir`, every
    epoch is appended to `log_dir/log.csv`. Returns the per-epoch history, concatenated.
    """
    history, epoch = {}, 0
    for index, phase in enumerate(phases):
        if phase.epochs <= 0:
            continue
        set_frozen(model, transferred, phase.frozen)
        with model.distribute_strategy.scope():  # optimizer and metrics live where the model does
            model.compile(optimizer=keras.optimizers.Adam(phase.lr), loss=loss, metrics=metrics_factory())
        callbacks = [PhaseLogger(index, phase), *extra_callbacks]
        if log_dir:
            callbacks.append(keras.callbacks.CSVLogger(os.path.join(log_dir, "log.csv"), append=index > 0))
        result = model.fit(train_data, validation_data=val_data, initial_epoch=epoch,
                           epochs=epoch + phase.epochs, steps_per_epoch=steps_per_epoch,
                           callbacks=callbacks, verbose=verbose, shuffle=False)
        for key, values in result.history.items():
            history.setdefault(key, []).extend(values)
        epoch += phase.epochs
    set_frozen(model, transferred, False)
    return history
