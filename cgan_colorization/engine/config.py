"""The colorizer's run configuration (`TrainConfig`): its options, each a field with its help and range
(`_COMMON_FIELDS`, plus each pretext's own from `registry`), the checks the ranges cannot make, and the run
folder's `config.json`. The presets are configs/fast.json and configs/paper.json (section "colorizer").

The help texts every layer shares (strategy, precision, collective timeout) are defined here once.
"""

import dataclasses
import json
import os

from cgan_colorization.constants import GPU_STEPS_PER_EXECUTION, TEXT_CHOICES
from cgan_colorization.engine.schema import Range, build_parser, option
from cgan_colorization.pretexts import registry
from data.diskfull import write_text

STRATEGY_HELP = ("tf.distribute strategy: auto (mirrored over several GPUs), one, mirrored, multiworker "
                 "(TF_CONFIG) or tpu")
PRECISION_HELP = ("auto (float32 on CPUs; mixed_bfloat16 on GPUs of compute capability >= 8.0, mixed_float16 on older "
                  "ones, refused there with several replicas), float32, mixed_float16 or mixed_bfloat16")
COLLECTIVE_TIMEOUT_HELP = ("--strategy multiworker: seconds a worker waits for the others in one collective "
                           "before the run stops with an error (0: no such timer; a dead worker is still found "
                           "within about 10 s by the coordination service's heartbeats, a stuck one is not; each "
                           "collective then keeps a thread for up to S seconds: at 600, a fast run ran out of threads "
                           "after 68 steps, see docs/distributed.md)")
SECTION = "colorizer"  # the presets' section of train_colorizer.py
# What a run folder's config.json records beside the options (training.train); --config leaves them aside.
RECORDED = ("steps_per_epoch_resolved", "precision", "replicas", "cache_manifest")


def _option_range(option):
    return Range(option.low, option.high, option.low_open, option.high_open) \
        if option.low is not None or option.high is not None else None


_COMMON_FIELDS = [  # (name, type, default, help, Range or None)
    ("objective", str, registry.PRETEXTS[registry.PAPER_PRETEXT].objective, "", None),
    ("backbone", str, registry.PRETEXTS[registry.PAPER_PRETEXT].backbone, "", None),
    ("dataset", str, "synthetic", "'synthetic' (embedded, default), 'coco' (TFDS coco/2014), 'coco:PATH', "
                                  "'folder:PATH', 'pets' or 'tinyimagenet:PATH' (the tiny-imagenet-200 folder)", None),
    ("image_size", int, 64, "square training size (a power of two for the U-Net, a multiple of 32 for "
                            "MobileNetV2)", Range(4)),
    ("base_filters", int, 32, "filters of the first U-Net level; later levels double up to 8x", Range(1)),
    ("batch_size", int, 16, "images per step (the global batch under a distribution strategy)", Range(1)),
    ("epochs", int, 6, "training epochs", Range(1)),
    ("steps_per_epoch", int, 100, "steps per epoch; 0 means one pass over the training files", Range(0)),
    ("lr", float, 2e-4, "Adam learning rate (the paper's text says 2e-3, its code 2e-4)", Range(0, low_open=True)),
    ("beta_1", float, 0.5, "Adam beta_1", Range(0, 1, high_open=True)),
    ("lr_schedule", str, "constant", "'constant' (pix2pix, the paper) or 'cosine' (decayed to 0 over the run's "
                                     "steps, e.g. for a converged supervised ceiling)", None),
    ("seed", int, 0, "seed of weights, data order and dropout", Range(0)),
    ("out", str, "runs/colorizer", "run folder; an interrupted run in it is resumed", None),
    ("val_fraction", float, 0.05, "fraction of a photo folder held out for validation and evaluation",
     Range(0, 1, low_open=True, high_open=True)),
    ("max_photos_per_class", int, 0, "--dataset tinyimagenet:PATH: train on the first N photos of each class "
                                     "(5: ~1k photos, 50: ~10k), nested so a smaller N's photos are among a larger "
                                     "N's; 0 means all", Range(0)),
    ("val_size", int, 256, "held-out images scored after every epoch: the first N of the held-out split (synthetic scenes, COCO validation images or the photos held out)", Range(1)),
    ("num_classes", int, 6, "object classes of the synthetic scenes", Range(1, 8)),
    ("resize_mode", str, "resize", "'resize' squashes to the size; 'crop' keeps the aspect and crops", None),
    ("random_crop", bool, False, "random instead of centre crops when --resize-mode crop", None),
    ("flip", bool, False, "random horizontal flips", None),
    ("keep_greyscale", bool, False, "keep greyscale photos (they carry no colour to learn)", None),
    ("cache", str, "", "folder of a decoded-image cache of a photo --dataset (inputs and targets at the training "
                       "size): read instead of decoding every epoch; built there first when absent, resumed when "
                       "half-written (see cache_images.py)", None),
    ("backup_every", int, 50, "steps between backups that let a killed run resume mid-epoch (0: not by steps; "
                              "every epoch end is backed up too)", Range(0)),
    ("backup_minutes", float, 0.0, "also back up after this many minutes of training since the last backup (0: not "
                                   "by time); what a GPU run should use, since a paper-size backup (both nets and "
                                   "both Adam states) is hundreds of MB", Range(0)),
    ("keep_steps", str, "", "comma-separated optimizer steps (e.g. 3000,12000) after which the generator is also kept, "
                            "as generator_stepNNNNNN.weights.h5 (load it with --colorizer RUN/that file): the shorter "
                            "runs of a compute contrast, from one run", None),
    ("probe", str, "", "a labelled set (any --dataset of the fine-tuning scripts: synthetic, voc:PATH, "
                       "tinyimagenet:PATH, ...) to probe the features on after every epoch: the weighted kNN top-1 "
                       "(single-label) or mAP (multi-label) of each encoder level, bank from its train split, queries "
                       "from its validation split, into log.csv (best level) and TensorBoard (every level)", None),
    ("probe_bank", int, 1000, "--probe: bank photos, the first N of the labelled train split", Range(1)),
    ("probe_queries", int, 250, "--probe: query photos, spread over the labelled validation split", Range(1)),
    ("monitor", str, "val", "what picks generator_best.weights.h5: 'val' (the lowest validation loss of the pretext) or "
                            "'probe' (the highest --probe score)", None),
    ("sample_count", int, 6, "images in the per-epoch sample grid", Range(1)),
    ("jit_compile", bool, False, "compile the train step with XLA (slower on CPUs, measured; try it on GPUs)", None),
    ("strategy", str, "auto", STRATEGY_HELP, None),
    ("collective_timeout", int, 0, COLLECTIVE_TIMEOUT_HELP, Range(0)),
    ("mixed_precision", str, "auto", PRECISION_HELP, None),
    ("steps_per_execution", int, 0, "train steps run per call into the compiled function (0: auto, "
                                    f"{GPU_STEPS_PER_EXECUTION} on GPUs, where a return to Python each step can "
                                    "cost as much as the step, 1 on CPUs)", Range(0)),
]


_PRETEXT_HELP = {
    "objective": "; ".join(f"{p.objective}{'' if p.backbone == 'unet' else ' --backbone ' + p.backbone}: {p.summary}"
                           for p in registry.PRETEXTS.values() if not p.overrides),
    "backbone": " or ".join(registry.BACKBONES),
}
_CHOICES = dict(TEXT_CHOICES, objective=registry.OBJECTIVES, backbone=tuple(registry.BACKBONES))
_FLAGS = {"num_classes": dict(flag="--synthetic-classes", aliases=("--num-classes",))}  # one name across the scripts


def _normalize(config):
    if config.steps_per_epoch == 0:  # 0 and unset both mean one pass over the training files
        config.steps_per_epoch = None


TrainConfig = dataclasses.make_dataclass(
    "TrainConfig",
    [(name, kind, option(default, _PRETEXT_HELP.get(name, help), valid, _CHOICES.get(name), **_FLAGS.get(name, {})))
     for name, kind, default, help, valid in _COMMON_FIELDS]
    + [(name, type(entry.default), option(entry.default, f"{entry.help} [{', '.join(registry.owners(name))}]",
                                          _option_range(entry)))
       for name, entry in registry.options().items()],  # each pretext's own options, from its registry entry
    namespace={"__doc__": "Everything that defines a colorizer training run; saved as `config.json` in the run "
                          "folder. The common fields are listed in `config._COMMON_FIELDS`; the options of one "
                          "pretext or backbone come from its entry in `registry`.",
               "__post_init__": _normalize, "RECORDED": RECORDED},
)
RANGES = {f.name: f.metadata["valid"] for f in dataclasses.fields(TrainConfig) if f.metadata["valid"] is not None}


def parse_steps(text):
    """The positive optimizer steps of a --keep-steps value ("3000,12000"), sorted; a one-sentence
    ValueError for anything else."""
    try:
        steps = sorted({int(part) for part in str(text).split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"--keep-steps takes comma-separated step counts such as 3000,12000, received {text!r}.") \
            from None
    if any(step < 1 for step in steps):
        raise ValueError(f"--keep-steps takes steps >= 1, received {text!r}.")
    return steps


def pretext_of(config):
    """The registry entry of a run's objective, backbone and option values (a one-sentence ValueError
    if there is none)."""
    return registry.pretext(config.objective, config.backbone,
                            {name: getattr(config, name) for name in registry.options()})


def check_config(config):
    """One-sentence errors for what the flags' own ranges cannot see: an objective the backbone does
    not offer, an image size the backbone cannot take, an option of another backbone, a range."""
    entry = pretext_of(config)
    backbone = registry.BACKBONES[entry.backbone]
    for name, valid in RANGES.items():
        value = getattr(config, name, None)
        if value is not None and not valid.contains(value):
            raise ValueError(f"--{name.replace('_', '-')} must be {valid.describe()}, received {value}.")
    backbone.check_size(config.image_size)
    parse_steps(config.keep_steps)
    if config.monitor == "probe" and not config.probe:
        raise ValueError("--monitor probe picks the best checkpoint by the feature probe: give --probe LABELLED too "
                         "(e.g. --probe synthetic).")
    for name in registry.options():
        owners = [b for b in registry.BACKBONES.values() if name in b.options]
        value = getattr(config, name)
        if owners and backbone not in owners and value != registry.options()[name].default:
            raise ValueError(f"--{name.replace('_', '-')} is an option of the {owners[0].label}: it needs --backbone "
                             f"{owners[0].name}, received --backbone {config.backbone}.")
    return entry


def train_parser(description):
    """train_colorizer.py's parser: one flag per `TrainConfig` field, presets from configs/ ("colorizer")."""
    return build_parser(description, TrainConfig, SECTION)


def save_config(config, run_dir, name="config.json", **extra):
    """Writes the resolved config and the facts its class `RECORDED`s (`extra`) as JSON into the run
    folder, where `--config RUN/config.json` reads it back."""
    unknown = set(extra) - set(type(config).RECORDED)
    if unknown:
        raise ValueError(f"{type(config).__name__}.RECORDED lacks {sorted(unknown)}: --config could not re-run the run.")
    os.makedirs(run_dir, exist_ok=True)
    payload = dict(dataclasses.asdict(config), **extra)
    write_text(os.path.join(run_dir, name), json.dumps(payload, indent=2, sort_keys=True), "the run's config")
    return payload


def load_config(run_dir, name="config.json"):
    """Reads a run folder's `config.json` back into a `TrainConfig`."""
    path = os.path.join(run_dir, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist: is {run_dir!r} a run folder written by train_colorizer.py?")
    with open(path) as f:
        values = json.load(f)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in values.items() if k in known}
    backbone = registry.BACKBONES.get(values.get("backbone", "unet"))
    for name, entry in registry.options().items():  # another backbone's options never applied to this run
        owners = [b for b in registry.BACKBONES.values() if name in b.options]
        if owners and backbone is not None and backbone not in owners:
            values[name] = entry.default
    return TrainConfig(**values)
