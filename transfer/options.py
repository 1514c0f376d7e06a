"""The parsers of the multi-part commands (reproduce.py, scaling_study.py), importable without TensorFlow
so that `--help` is instant and a bad value is refused in one sentence (exit status 2) before anything
starts."""

import argparse

from cgan_colorization import registry
from cgan_colorization.config import PRESET_HELP, PRESET_NAMES, Range, bounded, comma_separated, comma_subset
from cgan_colorization.constants import CHECKPOINT_HELP, CHECKPOINTS, DEFAULT_CHECKPOINT
from data import TASKS

TINY_TRAIN_PER_CLASS = 50  # fine-tuning and probe training images of each class (10,100 for 202 classes)
# Shares of the training labels, in (0, 1].
FRACTIONS = comma_separated(float, Range(0, 1, low_open=True))


def pretext_names(colorizing=False):
    """An argparse type: comma-separated registered pretexts, each NAME or NAME@CHECKPOINT (only
    colorizers with `colorizing`); returns the text as given."""
    def parse(text):
        entries = [item.partition("@") for item in text.split(",") if item]
        known = [p for p in registry.PRETEXTS if registry.PRETEXTS[p].colorizes or not colorizing]
        bad = [name + sep + checkpoint for name, sep, checkpoint in entries
               if name not in known or (sep and checkpoint not in CHECKPOINTS)]
        if bad or not entries:
            raise argparse.ArgumentTypeError(
                f"takes names from {tuple(known)}, each optionally followed by @{' or @'.join(CHECKPOINTS)}, "
                f"received {text!r}")
        return text

    parse.__name__ = "pretext names"
    return parse


def reproduce_parser():
    parser = argparse.ArgumentParser(
        description="Reproduce the protocol of Treneska et al. 2022 end to end: train the colorizer, score it "
        "(Table 3), fine-tune the classifier and the segmenter from it and from scratch over several seeds "
        "(Table 4), and write OUT/report.md. 'fast' runs on the embedded data on a CPU in minutes; 'paper' "
        "needs COCO 2014 and --voc PATH. A killed run resumes: finished parts are kept.")
    positive = bounded(int, Range(1))
    parser.add_argument("--preset", choices=PRESET_NAMES, default="fast", help=PRESET_HELP)
    parser.add_argument("--seeds", type=positive, help="downstream seeds (default 3)")
    parser.add_argument("--out", help="output folder (default runs/reproduce-<preset>)")
    parser.add_argument("--pretext-dataset", help="colorizer data: synthetic, coco, coco:PATH, folder:PATH")
    parser.add_argument("--voc", help="VOCdevkit/VOC2012 folder for both downstream tasks")
    parser.add_argument("--labelled", help="'seg-folder:IMAGES,MASKS' (or the train;val form) for both tasks")
    parser.add_argument("--classification-dataset", help="overrides the classification data")
    parser.add_argument("--segmentation-dataset", help="overrides the segmentation data")
    parser.add_argument("--void-index", type=bounded(int, Range(0, 255)), help="void value of a labelled folder's masks (CamVid: 11)")
    parser.add_argument("--pretexts", default="gan", type=pretext_names(),
                        help="comma-separated pretexts to compare, each NAME or NAME@CHECKPOINT (e.g. gan,gan@best: "
                             "one colorizer, transferred at both checkpoints); random init of each backbone is the "
                             "floor: " + "; ".join(f"{p.name}: {p.summary}" for p in registry.PRETEXTS.values()))
    parser.add_argument("--checkpoint", choices=CHECKPOINTS, default=DEFAULT_CHECKPOINT,
                        help="the checkpoint of a pretext named without one: " + CHECKPOINT_HELP)
    parser.add_argument("--multitask-dataset",
                        help="pretext data of the multitask pretexts, which need masks (synthetic or pets) when "
                             "--pretext-dataset is a photo folder without them (default: --pretext-dataset)")
    parser.add_argument("--colorizer", help="reuse this colorizer run folder (for a single pretext)")
    parser.add_argument("--image-size", type=bounded(int, Range(4)),
                        help="pretext and downstream size (fast 64, paper 256)")
    parser.add_argument("--pretext-epochs", type=positive, help="colorizer epochs")
    parser.add_argument("--pretext-steps", type=positive, help="colorizer steps per epoch")
    parser.add_argument("--downstream-scale", type=bounded(float, Range(0, low_open=True)), default=1.0,
                        help="multiply the downstream epochs of the preset (e.g. 0.5 for a quicker look)")
    parser.add_argument("--train-size", type=positive, help="cap on downstream training images per seed")
    parser.add_argument("--eval-size", type=positive, help="cap on downstream validation and test images")
    parser.add_argument("--base-filters", type=positive, help="U-Net width of the colorizer (fast 32, paper 64)")
    parser.add_argument("--tasks", type=comma_subset(TASKS), default=TASKS,
                        help=f"the downstream tasks to fine-tune on, comma-separated (default {','.join(TASKS)}); the "
                             "report's tables cover these")
    parser.add_argument("--label-fractions", type=FRACTIONS, default=(1.0,),
                        help="fine-tune on these shares of the training labels too, e.g. 0.1,1 (label efficiency: "
                             "the smaller shares nest in the larger ones and take as many steps)")
    parser.add_argument("--probes", action="store_true",
                        help="also run the linear probes per encoder level and low-shot (evaluate_features.py) on "
                             "the classification data, for every colorizer and the random floors over the seeds")
    parser.add_argument("--probe-train-size", type=bounded(int, Range(0)), default=512,
                        help="training images of the probes (0: all)")
    return parser


def scaling_parser():
    parser = argparse.ArgumentParser(
        description="The data-scaling study: pretexts trained on nested subsets of Tiny ImageNet (N photos a "
        "class), scored by linear top-1 per encoder level, Tiny ImageNet fine-tuning on a share of the labels and "
        "CamVid segmentation, beside random init and a supervised ceiling; writes OUT/report.md and "
        "OUT/scaling.png. Resumes where it stopped: finished parts are read back.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    positive = bounded(int, Range(1))
    share = bounded(float, Range(0, 1, low_open=True))
    parser.add_argument("--tiny", required=True, help="the unpacked tiny-imagenet-200 folder")
    parser.add_argument("--labelled", required=True,
                        help="the segmentation data, e.g. 'seg-folder:TRAIN_IMAGES,TRAIN_MASKS;VAL_IMAGES,VAL_MASKS'")
    parser.add_argument("--void-index", type=bounded(int, Range(0, 255)),
                        help="void value of the segmentation masks (CamVid: 11)")
    parser.add_argument("--out", default="runs/scaling", help="output folder")
    parser.add_argument("--pretexts", default="gan,classification", type=pretext_names(colorizing=True),
                        help="comma-separated colorization pretexts")
    parser.add_argument("--per-class", default="5,50,250", type=comma_separated(int, Range(1)),
                        help="pretext photos of each class, one colorizer per value (the subsets nest)")
    parser.add_argument("--seeds", type=positive, default=3, help="downstream seeds (and random inits)")
    parser.add_argument("--pretext-epochs", type=positive, default=30, help="colorizer epochs, at every size")
    parser.add_argument("--pretext-steps", type=positive, default=200, help="colorizer steps per epoch")
    parser.add_argument("--image-size", type=positive, default=64, help="pretext and downstream size")
    parser.add_argument("--base-filters", type=positive, default=32, help="U-Net width")
    parser.add_argument("--tiny-fraction", type=share, default=0.1,
                        help="share of the Tiny ImageNet training labels the classifier is fine-tuned on")
    parser.add_argument("--camvid-fractions", type=FRACTIONS, default=(0.1, 1.0),
                        help="shares of the segmentation labels")
    parser.add_argument("--train-per-class", type=positive, default=TINY_TRAIN_PER_CLASS,
                        help="Tiny ImageNet training images a class for fine-tuning and the linear probe")
    parser.add_argument("--segmentation-train-size", type=positive,
                        help="cap on the segmentation training images (default: the fast preset's 1,024)")
    parser.add_argument("--downstream-scale", type=bounded(float, Range(0, low_open=True)), default=1.0,
                        help="multiply the fine-tuning epochs of the fast preset (e.g. 0.25 for a quick look)")
    parser.add_argument("--no-ceiling", action="store_true", help="leave out the supervised ceiling")
    return parser
