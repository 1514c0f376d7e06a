"""The options of the multi-part commands (reproduce.py, scaling_study.py) and of the probe-curve plot, each a
dataclass of `schema.option`s; their parsers are generated from them, importable without TensorFlow so that
`--help` is instant and a bad value is refused in one sentence (exit status 2) before anything starts.
Their presets are the "reproduce" and "scaling" sections of configs/fast.json and configs/paper.json."""

import argparse
import dataclasses

from cgan_colorization.constants import CHECKPOINT_HELP, CHECKPOINTS, DEFAULT_CHECKPOINT
from cgan_colorization.engine.schema import PRESET_NAMES, Range, build_parser, comma_separated, comma_subset, option
from cgan_colorization.pretexts import registry
from data import TASKS

# Shares of the training labels, in (0, 1].
FRACTIONS = comma_separated(float, Range(0, 1, low_open=True))


def pretext_names(colorizing=False, checkpoints=CHECKPOINTS):
    """An argparse type: comma-separated registered pretexts, each NAME or NAME@CHECKPOINT (only
    colorizers with `colorizing`; plain names without `checkpoints`), refused here as
    `registry.parse_pretexts` would refuse them; returns the text, which the study reads into
    `registry.PretextRef`s once its --checkpoint is known."""
    def parse(text):
        try:
            registry.parse_pretexts(text, colorizing=colorizing, checkpoints=checkpoints)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return text

    parse.__name__ = "pretext names"
    return parse


@dataclasses.dataclass
class ReproduceOptions:
    """reproduce.py: the protocol's parts and their data. Written to OUT/config.json as the study's plan."""

    preset: str = option("fast", "the preset of every colorizer and fine-tuning run", choices=PRESET_NAMES)
    seeds: int = option(3, "downstream seeds", Range(1))
    out: str = option(None, "output folder (unset: runs/reproduce-<preset>)")
    pretext_dataset: str = option(None, "colorizer data: synthetic, coco, coco:PATH, folder:PATH")
    voc: str = option(None, "VOCdevkit/VOC2012 folder for both downstream tasks")
    labelled: str = option(None, "labelled data of both downstream tasks: 'synthetic', 'seg-folder:IMAGES,MASKS' (or "
                                 "the train;val form); --voc takes its place")
    classification_dataset: str = option(None, "overrides the classification data")
    segmentation_dataset: str = option(None, "overrides the segmentation data")
    void_index: int = option(None, "void value of a labelled folder's masks (CamVid: 11)", Range(0, 255))
    pretexts: str = option(registry.PAPER_PRETEXT,
                           "comma-separated pretexts to compare, each NAME or NAME@CHECKPOINT (e.g. gan,gan@best: "
                           "one colorizer, transferred at both checkpoints); random init of each backbone is the "
                           "floor: " + "; ".join(f"{p.name}: {p.summary}" for p in registry.PRETEXTS.values()),
                           parse=pretext_names())
    checkpoint: str = option(DEFAULT_CHECKPOINT, "the checkpoint of a pretext named without one: " + CHECKPOINT_HELP,
                             choices=CHECKPOINTS)
    pretext_seeds: int = option(1, "runs of each pretext, at seeds 0 .. N-1, named -pseedN in their folders (1: one "
                                   "run at the training default seed); tables pool them and each gain's 95 % CI "
                                   "resamples them", Range(1))
    multitask_dataset: str = option(None, "pretext data of the multitask pretexts, which need masks (synthetic or "
                                          "pets) when --pretext-dataset is a photo folder without them (unset: "
                                          "--pretext-dataset)")
    colorizer: str = option(None, "reuse this colorizer run folder (for a single pretext)")
    image_size: int = option(None, "pretext and downstream size (unset: the colorizer preset's)", Range(4))
    pretext_epochs: int = option(None, "colorizer epochs (unset: the colorizer preset's)", Range(1))
    pretext_steps: int = option(None, "colorizer steps per epoch (unset: the colorizer preset's)", Range(1))
    downstream_scale: float = option(1.0, "multiply the downstream epochs of the preset (e.g. 0.5 for a quicker look)",
                                     Range(0, low_open=True))
    train_size: int = option(None, "cap on downstream training images per seed", Range(1))
    eval_size: int = option(None, "cap on downstream validation and test images", Range(1))
    base_filters: int = option(None, "U-Net width of the colorizer (unset: the colorizer preset's)", Range(1))
    tasks: tuple = option(TASKS, "the downstream tasks to fine-tune on, comma-separated; the report's tables cover "
                                 "these", parse=comma_subset(TASKS))
    label_fractions: tuple = option((1.0,), "fine-tune on these shares of the training labels too, e.g. 0.1,1 (label "
                                            "efficiency: the smaller shares nest in the larger ones and take as many "
                                            "steps)", parse=FRACTIONS)
    probes: bool = option(False, "also run the linear probes per encoder level and low-shot (evaluate_features.py) on "
                                 "the classification data, for every colorizer and the random floors over the seeds")
    probe_train_size: int = option(512, "training images of the probes (0: all)", Range(0))


def reproduce_parser():
    return build_parser(
        "Reproduce the protocol of Treneska et al. 2022 end to end: train the colorizer, score it "
        "(Table 3), fine-tune the classifier and the segmenter from it and from scratch over several seeds "
        "(Table 4), and write OUT/report.md. 'fast' runs on the embedded data on a CPU in minutes; 'paper' "
        "needs COCO 2014 and --voc PATH. A killed run resumes: finished parts are kept. A study is one file: "
        "--config configs/real-photo-study.json.", ReproduceOptions, section="reproduce")


@dataclasses.dataclass
class ScalingOptions:
    """scaling_study.py. Its design values (sizes, steps, seeds, shares) are the fast preset's "scaling" section:
    the study runs at the fast preset's colorizer and downstream schedule."""

    tiny: str = option(None, "the unpacked tiny-imagenet-200 folder", required=True)
    labelled: str = option(None, "the segmentation data, e.g. 'seg-folder:TRAIN_IMAGES,TRAIN_MASKS;VAL_IMAGES,"
                                 "VAL_MASKS'", required=True)
    void_index: int = option(None, "void value of the segmentation masks (CamVid: 11)", Range(0, 255))
    out: str = option("runs/scaling", "output folder")
    pretexts: str = option(None, "comma-separated colorization pretexts",
                           parse=pretext_names(colorizing=True, checkpoints=()))
    per_class: tuple = option(None, "pretext photos of each class, one colorizer per value (the subsets nest)",
                              parse=comma_separated(int, Range(1)))
    seeds: int = option(None, "downstream seeds (and random inits)", Range(1))
    pretext_seeds: int = option(1, "runs of each pretext at every size, at seeds 0 .. N-1 (-pseedN in their folders)",
                                Range(1))
    pretext_epochs: int = option(None, "colorizer epochs, at every size", Range(1))
    pretext_steps: int = option(None, "colorizer steps per epoch", Range(1))
    image_size: int = option(None, "pretext and downstream size", Range(4))
    base_filters: int = option(None, "U-Net width", Range(1))
    tiny_fraction: float = option(None, "share of the Tiny ImageNet training labels the classifier is fine-tuned on",
                                  Range(0, 1, low_open=True))
    camvid_fractions: tuple = option(None, "shares of the segmentation labels", parse=FRACTIONS)
    train_per_class: int = option(None, "Tiny ImageNet training images a class for fine-tuning and the linear probe",
                                  Range(1))
    segmentation_train_size: int = option(None, "cap on the segmentation training images (unset: the fast "
                                                "segmentation preset's)", Range(1))
    downstream_scale: float = option(1.0, "multiply the fine-tuning epochs of the fast preset (e.g. 0.25 for a quick "
                                          "look)", Range(0, low_open=True))
    no_ceiling: bool = option(False, "leave out the supervised ceiling")


def scaling_parser():
    return build_parser(
        "The data-scaling study: pretexts trained on nested subsets of Tiny ImageNet (N photos a "
        "class), scored by linear top-1 per encoder level, Tiny ImageNet fine-tuning on a share of the labels and "
        "CamVid segmentation, beside random init and a supervised ceiling; writes OUT/report.md and "
        "OUT/scaling.png. Resumes where it stopped: finished parts are read back. The reported run is "
        "--config configs/tiny-imagenet-scaling.json.", ScalingOptions, section="scaling")


@dataclasses.dataclass
class ProbeCurveOptions:
    """`python -m transfer.online_probe`: the probe curves of trained runs."""

    runs: tuple = option((), "run folders of train_colorizer.py --probe", positional=True, required=True)
    out: str = option(None, "the figure's path (.png)", required=True)


def probe_curve_parser():
    return build_parser("The feature probe's score against the optimizer step, one curve per run folder of "
                        "train_colorizer.py --probe.", ProbeCurveOptions)
