"""Two-phase fine-tuning, one function for both downstream tasks (keras-io's transfer-learning recipe):
freeze the transferred layers -> fit -> unfreeze -> recompile -> fit."""

import dataclasses
import os

import keras

from cgan_colorization.networks.batchnorm import batchnorm_layers, recalibrate_batchnorm

UNFROZEN_BN = ("train", "inference")  # what the transferred BatchNorm layers do once unfrozen


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


def set_frozen(model, layer_names, frozen, keep_batchnorm_frozen=False):
    """Freezes (or unfreezes) the named layers. A frozen BatchNormalization layer runs in inference
    mode in Keras 3, so its moving statistics stay untouched as well as its weights.
    `keep_batchnorm_frozen` unfreezes all but the BatchNorm layers in them (nested ones included),
    which keep the statistics and scale they came with (Keras' transfer-learning guide)."""
    for name in layer_names:
        layer = model.get_layer(name)
        layer.trainable = not frozen
        if not frozen and keep_batchnorm_frozen:
            for bn in batchnorm_layers(layer):
                bn.trainable = False


def two_phase_finetune(model, train_data, val_data, phases, *, loss, metrics_factory, transferred=(),
                       log_dir=None, steps_per_epoch=None, verbose="auto", extra_callbacks=(),
                       unfrozen_bn="inference", recalibrate_batches=0):
    """Fits `model` through `phases` in order, recompiling with a fresh Adam for each phase.

    A from-scratch baseline is one phase with nothing frozen. `metrics_factory()` returns new metric
    objects for each compile. Epochs are numbered continuously across phases; with `log_dir`, every
    epoch is appended to `log_dir/log.csv`. Returns the per-epoch history, concatenated.

    `unfrozen_bn`: in the unfrozen phases, the transferred BatchNorm layers either re-estimate their
    statistics on each batch and train their scale ("train") or stay in inference mode with the
    colorizer's statistics and scale ("inference", Keras' transfer-learning guide). After the last
    phase, `recalibrate_batches` > 0 re-estimates the moving statistics of every BatchNorm layer that
    trained on `recalibrate_batches` training batches (`batchnorm.recalibrate_batchnorm`).
    """
    if unfrozen_bn not in UNFROZEN_BN:
        raise ValueError(f"unfrozen_bn must be one of {UNFROZEN_BN}, received unfrozen_bn={unfrozen_bn!r}.")
    history, epoch = {}, 0
    for index, phase in enumerate(phases):
        if phase.epochs <= 0:
            continue
        set_frozen(model, transferred, phase.frozen, keep_batchnorm_frozen=unfrozen_bn == "inference")
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
    # The layers frozen in the last phase (and their BatchNorm statistics) are left as they are.
    recalibrate_batchnorm(model, train_data, recalibrate_batches)
    set_frozen(model, transferred, False)
    return history
