"""Downstream run configuration and the presets of the paper's downstream schedule."""

import dataclasses

from cgan_colorization.config import Range
from cgan_colorization.constants import DEFAULT_CHECKPOINT


@dataclasses.dataclass
class FinetuneConfig:
    """Everything that defines a downstream run; saved as `config.json` in its run folder."""

    task: str = "classification"
    init: str = "colorization"
    colorizer: str = None  # None: DEFAULT_COLORIZER; either must exist (a fine-tuning run trains no colorizer)
    checkpoint: str = DEFAULT_CHECKPOINT  # which generator of the colorizer's run folder: "last" or "best"
    dataset: str = "synthetic"
    image_size: int = None  # None: the colorizer's size (64 without one)
    base_filters: int = None  # None: the colorizer's width (32 without one)
    batch_size: int = 16
    baseline_epochs: int = 4
    frozen_epochs: int = 3
    unfrozen_epochs: int = 1
    lr: float = 3e-4
    unfrozen_lr: float = 5e-5
    dense_units: int = 4096
    seed: int = 0
    out: str = None  # None: runs/classifier or runs/segmenter
    split_mode: str = "paper"
    test_sequence: str = "0006R0"  # --split-mode sequence: the test sequence (splits.DEFAULT_TEST_SEQUENCE)
    val_sequence: str = None  # --split-mode sequence: the sequence ending in val; None: the longest other
    include_difficult: bool = True
    void_index: int = None
    min_fraction: float = 0.01
    num_classes: int = None
    synthetic_classes: int = 6
    train_size: int = None  # caps on the images of each split; None: the whole split
    val_size: int = None
    test_size: int = None
    scale_shorter: int = None  # segmentation: scale pairs so the shorter side has this many pixels
    run_name: str = None  # folder under --out; None: `default_run_name` (init, checkpoint, labels, seed)
    strategy: str = "auto"
    collective_timeout: int = 0  # --strategy multiworker: seconds a collective waits for the other workers (0: no timer)
    save_weights: bool = False  # write the fine-tuned model's weights to RUN/model.weights.h5
    mixed_precision: str = "auto"
    backbone: str = None  # None: the colorizer's (unet without one); mobilenetv2 reads YUV's Y
    bn_momentum: float = None  # MobileNetV2's BatchNorm momentum; None: its registry default (0.9)
    unfrozen_bn: str = "inference"  # phase 2: transferred BatchNorm layers stay in "inference" mode or "train" (README)
    recalibrate_bn: int = 0  # training batches that re-estimate the BatchNorm statistics before the test (0: none)
    label_fraction: float = 1.0  # train on this share of the training labels (the first ones of the split's order)


# The paper's downstream schedule. It gives no segmentation rates: we use the classifier's (3e-4, then 5e-5).
STATISTICS_BATCHES = 20  # diagnose_batchnorm.py: training batches that estimate the data's statistics

TASK_PRESETS = {
    ("classification", "paper"): dict(batch_size=32, baseline_epochs=4, frozen_epochs=3, unfrozen_epochs=1,
                                      lr=3e-4, unfrozen_lr=5e-5, dense_units=4096),
    ("segmentation", "paper"): dict(batch_size=16, baseline_epochs=6, frozen_epochs=1, unfrozen_epochs=5,
                                    lr=3e-4, unfrozen_lr=5e-5),
    ("classification", "fast"): dict(batch_size=16, baseline_epochs=4, frozen_epochs=3, unfrozen_epochs=1,
                                     train_size=1024, val_size=256, test_size=512),
    # Measured on the synthetic set (1,024 images, 6 epochs): at 3e-4 / 5e-5 both inits stay near
    # 13 % mIoU; at 1e-3 / 5e-4 they reach 28-30 %. The classifier does best at the paper's rates.
    ("segmentation", "fast"): dict(batch_size=16, baseline_epochs=6, frozen_epochs=1, unfrozen_epochs=5,
                                   lr=1e-3, unfrozen_lr=5e-4, train_size=1024, val_size=256, test_size=512,
                                   scale_shorter=0),
}

# Valid values of the numeric flags (0 for a size cap means the whole split).
RANGES = {
    "image_size": Range(4), "base_filters": Range(1), "batch_size": Range(1), "baseline_epochs": Range(1),
    "frozen_epochs": Range(0), "unfrozen_epochs": Range(0), "lr": Range(0, low_open=True),
    "unfrozen_lr": Range(0, low_open=True), "dense_units": Range(1), "seed": Range(0), "void_index": Range(0, 255),
    "min_fraction": Range(0, 1), "num_classes": Range(2), "synthetic_classes": Range(1, 8),
    "train_size": Range(0), "val_size": Range(0), "test_size": Range(0), "scale_shorter": Range(0),
    "collective_timeout": Range(0),
    "label_fraction": Range(0, 1, low_open=True),
    "bn_momentum": Range(0, 1, high_open=True), "recalibrate_bn": Range(0),
}


def default_run_name(config):
    """The run's folder name under --out when no --run-name is given: the init, the checkpoint when it
    is not the last one, the share of the labels when it is not all of them, and the seed, so that
    runs that differ in any of these never overwrite each other (e.g. "colorization-best-labels10-seed2")."""
    name = config.init
    if config.init == "colorization" and config.checkpoint != DEFAULT_CHECKPOINT:
        name += f"-{config.checkpoint}"
    if config.label_fraction < 1:
        name += f"-labels{100 * config.label_fraction:g}"
    return f"{name}-seed{config.seed}"


# Low-shot probes: positives per class, and random draws of each k.
SHOTS = (1, 2, 4, 8, 16, 32)
DRAWS = 5
# kNN top-1 on single-label sets: neighbours that vote and the temperature of their weights (DINO's values).
KNN_K = 20
KNN_TEMPERATURE = 0.07


@dataclasses.dataclass
class ProbeConfig:
    """Everything that defines a probe run; saved beside its results."""

    colorizers: tuple = ()  # colorizer run folders, or (run folder, checkpoint) pairs; random inits are added
    checkpoint: str = DEFAULT_CHECKPOINT  # the checkpoint of a run folder given without one: "last" or "best"
    dataset: str = "synthetic"
    out: str = "runs/probes"
    seed: int = 0
    random_seeds: int = 1  # random inits of each backbone (their spread is the floor's)
    train_size: int = 512  # caps on the training (train + val) and test images; 0: all
    test_size: int = 512
    batch_size: int = 32
    shots: tuple = SHOTS
    draws: int = DRAWS
    split_mode: str = "paper"
    test_sequence: str = "0006R0"
    val_sequence: str = None
    void_index: int = None
    min_fraction: float = 0.01
    synthetic_classes: int = 6
    pooled_size: int = None  # values per level; None: 9k for the SVM probes, LINEAR_POOLED_SIZE for linear top-1
    knn_k: int = KNN_K  # single-label sets: neighbours that vote in the kNN top-1
    knn_temperature: float = KNN_TEMPERATURE  # and the temperature of their weights exp(cosine / T)
