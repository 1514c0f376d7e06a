"""The downstream runs' options (`FinetuneConfig`, `ProbeConfig`), each a field with its help, range or
choices; the parsers of the fine-tuning and probe scripts are generated from them. The presets of the paper's
downstream schedule are configs/fast.json and configs/paper.json (sections "classification", "segmentation")."""

import dataclasses

from cgan_colorization.constants import CHECKPOINT_HELP, CHECKPOINTS, DEFAULT_CHECKPOINT, DEFAULT_COLORIZER, TEXT_CHOICES
from cgan_colorization.engine.config import COLLECTIVE_TIMEOUT_HELP, PRECISION_HELP, STRATEGY_HELP
from cgan_colorization.engine.schema import Range, comma_separated, option
from cgan_colorization.pretexts import registry
from data import TASKS

STATISTICS_BATCHES = 20  # diagnose_batchnorm.py: training batches that estimate the data's statistics
# Low-shot probes: positives per class, and random draws of each k.
SHOTS = (1, 2, 4, 8, 16, 32)
DRAWS = 5
# kNN top-1 on single-label sets: neighbours that vote and the temperature of their weights (DINO's values).
KNN_K = 20
KNN_TEMPERATURE = 0.07


@dataclasses.dataclass
class LabelledData:
    """A labelled set and how it is split: the options the fine-tuning and probe scripts share."""

    dataset: str = option("synthetic", "'synthetic' (embedded), 'voc:PATH' (VOCdevkit/VOC2012), 'tfds:voc/2012' "
                                       "(classification) or 'seg-folder:IMAGES,MASKS' (a labelled folder; see README)")
    split_mode: str = option("paper", "'paper' (70/20/10 stratified re-split), 'official' (VOC train/val lists) or "
                                      "'sequence' (video frames of a seg-folder set such as CamVid, split by the name's "
                                      "prefix before '_': test is one whole sequence, val the end of another; "
                                      "docs/data.md)", choices=TEXT_CHOICES["split_mode"])
    # data.labelled.splits.DEFAULT_TEST_SEQUENCE (that module loads TensorFlow; a test checks they agree)
    test_sequence: str = option("0006R0", "--split-mode sequence: the sequence held out whole as the test split (the "
                                          "default is one of CamVid's)")
    val_sequence: str = option(None, "--split-mode sequence: the sequence whose last frames (0.15 of those outside the "
                                     "test sequence, after a gap of 5) are the validation split (unset: the longest one "
                                     "besides the test sequence)")
    void_index: int = option(None, "mask value to ignore in a labelled folder (CamVid: 11); VOC uses 255",
                             Range(0, 255))
    min_fraction: float = option(0.01, "a class is an image-level label when it covers at least this fraction of a "
                                       "mask", Range(0, 1))
    synthetic_classes: int = option(6, "object classes of the synthetic scenes", Range(1, 8))


@dataclasses.dataclass
class FinetuneConfig(LabelledData):
    """Everything that defines a downstream run; saved as `config.json` in its run folder, which
    `finetune_*.py --config RUN/config.json` re-runs."""

    RECORDED = ("image_size_resolved", "base_filters_resolved", "backbone_resolved")  # beside the options

    task: str = option("classification", "the downstream task (set by the script)")
    init: str = option("colorization", "'colorization' (transfer the colorizer's weights, two phases) or 'random' "
                                       "(N(0, 0.02), from scratch)", choices=TEXT_CHOICES["init"])
    colorizer: str = option(None, f"colorizer run folder, generator weights file or shipped pretrained:NAME (must "
                                  f"exist; nothing is trained here); unset: {DEFAULT_COLORIZER}, which "
                                  f"train_colorizer.py writes by default")
    checkpoint: str = option(DEFAULT_CHECKPOINT, CHECKPOINT_HELP, choices=CHECKPOINTS)
    image_size: int = option(None, "input size; unset: the colorizer's (64 without one)", Range(4))
    base_filters: int = option(None, "U-Net width; unset: the colorizer's (32 without one)", Range(1))
    batch_size: int = option(16, "images per step", Range(1))
    baseline_epochs: int = option(4, "epochs of the from-scratch baseline", Range(1))
    frozen_epochs: int = option(3, "phase 1: epochs with the transferred layers frozen", Range(0))
    unfrozen_epochs: int = option(1, "phase 2: epochs with everything trainable", Range(0))
    lr: float = option(3e-4, "Adam learning rate of the baseline and of phase 1", Range(0, low_open=True))
    unfrozen_lr: float = option(5e-5, "Adam learning rate of phase 2", Range(0, low_open=True))
    dense_units: int = option(4096, "units of the classifier's two hidden dense layers", Range(1))
    seed: int = option(0, "seed of weights, data order and splits", Range(0))
    out: str = option(None, "parent folder; this run goes to OUT/<run name> (unset: runs/classifier or "
                            "runs/segmenter)")
    include_difficult: bool = option(True, "count VOC objects marked difficult in the image labels")
    num_classes: int = option(None, "classes of a labelled folder (unset: from its masks)", Range(2))
    train_size: int = option(None, "at most this many training images (0 or unset: the whole split)", Range(0))
    val_size: int = option(None, "at most this many validation images (0 or unset: the whole split)", Range(0))
    test_size: int = option(None, "at most this many test images (0 or unset: the whole split)", Range(0))
    scale_shorter: int = option(None, "segmentation: first scale image and mask so the shorter side has this many "
                                      "pixels (0: the input size, so crops cover the scene; unset: the stored "
                                      "resolution, as the paper)", Range(0))
    run_name: str = option(None, "name of this run's folder under --out (unset: the init, '-best' for --checkpoint "
                                 "best, '-labelsP' for a share of the labels, and the seed, e.g. colorization-seed0)")
    strategy: str = option("auto", STRATEGY_HELP, choices=TEXT_CHOICES["strategy"])
    collective_timeout: int = option(0, COLLECTIVE_TIMEOUT_HELP, Range(0))
    save_weights: bool = option(False, "write the fine-tuned model's weights to the run folder (model.weights.h5)")
    mixed_precision: str = option("auto", PRECISION_HELP, choices=TEXT_CHOICES["mixed_precision"])
    backbone: str = option(None, " or ".join(f"{b.name} (the {b.label}, reading "
                                             f"{'Lab L' if b.color_space == 'lab' else 'YUV Y'})"
                                             for b in registry.BACKBONES.values()) + "; unset: the colorizer's",
                           choices=tuple(registry.BACKBONES))
    bn_momentum: float = option(None, "MobileNetV2: momentum of every BatchNorm (unset: 0.9, which suits these short "
                                      "schedules; Keras' own 0.999 is for long runs from ImageNet weights, or add "
                                      "--recalibrate-bn)", Range(0, 1, high_open=True))
    unfrozen_bn: str = option("inference", "phase 2: the transferred BatchNorm layers stay in 'inference' mode with "
                                           "the colorizer's statistics and scale (Keras' guide; measured better, "
                                           "README) or 'train' (normalize with each batch, update their statistics "
                                           "and scale)", choices=TEXT_CHOICES["unfrozen_bn"])
    recalibrate_bn: int = option(0, "before the test, re-estimate the moving statistics of the BatchNorm layers that "
                                    "trained on this many training batches (0: keep the moving averages of training)",
                                 Range(0))
    label_fraction: float = option(1.0, "train on this share of the training labels, the first ones of the split's "
                                        "seeded order (so smaller shares nest in larger ones), repeated so that every "
                                        "share takes as many steps", Range(0, 1, low_open=True))


@dataclasses.dataclass
class DiagnoseConfig(FinetuneConfig):
    """diagnose_batchnorm.py: one fine-tuning run of either task, and the batches that estimate the data's
    statistics."""

    task: str = option("segmentation", "which downstream model to train and diagnose", choices=TASKS)
    statistics_batches: int = option(STATISTICS_BATCHES, "training batches that estimate the data's statistics",
                                     Range(1))


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



@dataclasses.dataclass
class ProbeConfig(LabelledData):
    """Everything that defines a probe run; saved beside its results."""

    colorizers: tuple = option((), "a colorizer run folder (repeat for several; in a config file, a folder or a "
                                   "[folder, checkpoint] pair each); none: the random floor alone", flag="--colorizer",
                               repeat=True)
    checkpoint: str = option(DEFAULT_CHECKPOINT, CHECKPOINT_HELP + "; 'both' probes each colorizer at both",
                             choices=(*CHECKPOINTS, "both"))
    out: str = option("runs/probes", "output folder")
    seed: int = option(0, "seed of splits, draws and random init", Range(0))
    random_seeds: int = option(1, "random inits of each backbone (the floor's spread)", Range(1))
    train_size: int = option(512, "at most this many training (train + val) images; 0: all", Range(0))
    test_size: int = option(512, "at most this many test images; 0: all", Range(0))
    batch_size: int = option(32, "images per batch", Range(1))
    shots: tuple = option(SHOTS, "low-shot positives per class, comma-separated (empty: no low-shot)",
                          parse=comma_separated(int, Range(1), allow_empty=True, sort=False))
    draws: int = option(DRAWS, "random draws per low-shot k", Range(1))
    pooled_size: int = option(None, "pooled values per level (unset: 9k for the SVM probes, "
                                    "feature_eval.LINEAR_POOLED_SIZE for linear top-1)", Range(1))
    knn_k: int = option(KNN_K, "single-label sets: training images nearest to each test image that vote in the kNN "
                               "top-1 (Wu et al. 2018; DINO's 20); capped at the number of training images", Range(1))
    knn_temperature: float = option(KNN_TEMPERATURE, "single-label sets: temperature T of the kNN votes, each weighted "
                                                     "exp(cosine / T) (DINO's 0.07; smaller: the nearest neighbours "
                                                     "count more)", Range(0, low_open=True))
