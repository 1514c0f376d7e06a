"""Every pretext and backbone the package knows, in one place: what each is, how it is built and
loaded, and the options that belong to it. Every caller (training, loading, evaluation, colorize,
fine-tuning, reproduce and the report) reads these tables; nobody parses pretext names or looks for
layers to find out what a model is.

This module imports no TensorFlow, so `--help` stays instant: implementations are named as
"module:function" and imported on first use (pix2pix's `find_model_using_name`).

Adding a pretext = one module that defines `build(config, strategy, train_ds, run_dir)` (the
compiled `PretextModel` to train) and `load(entry, config, run_dir, weights, inference_dropout)` (a
`pretext.Colorizer`), plus one `Pretext(...)` entry in `PRETEXTS` below. The modules never import
this one: they are handed their entry.

A study names a pretext by a label, NAME or NAME@CHECKPOINT (`gan-skipdrop@best`); `parse_pretexts`
turns labels into `PretextRef` values where they enter, and everything after reads their fields.
"""

import dataclasses
import importlib

from cgan_colorization.constants import (CHECKPOINTS, DEFAULT_CHECKPOINT, KERAS_MOBILENET_BN_MOMENTUM,
                                         MOBILENET_BN_MOMENTUM, ZHANG_TEMPERATURE)


@dataclasses.dataclass(frozen=True)
class Option:
    """A command-line option that belongs to one pretext or backbone: its default, its help text and
    its valid range (`low` <= value, value <= `high`; `low_open` makes the lower bound strict)."""

    default: object
    help: str
    low: float = None
    high: float = None
    low_open: bool = False
    high_open: bool = False


def _resolve(target):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A network trunk: its builder ("module:function" returning `backbones.Features`), the colour
    space its networks read and predict, and how reports name it and its from-scratch floor."""

    name: str
    builder: str
    color_space: str  # "lab" (L in, ab out) or "yuv" (Y in, UV out)
    label: str
    random_name: str  # the name of its random-init floor in the downstream runs and the report
    random_label: str
    power_of_two: bool = False  # image sizes it takes: a power of two (the U-Net halves down to 1 x 1)
    size_multiple: int = 1  # ... or a multiple of this
    bottleneck: str = None  # the layer whose code `evaluation.bottleneck_health` inspects (None: no single one)
    options: dict = dataclasses.field(default_factory=dict)

    def check_size(self, image_size):
        """A one-sentence ValueError for an image size this backbone cannot take."""
        if self.power_of_two and (image_size < 4 or image_size & (image_size - 1)):
            raise ValueError(f"the {self.label} needs --image-size a power of two >= 4 (it halves the image down "
                             f"to a 1 x 1 bottleneck), received {image_size}.")
        if image_size < self.size_multiple or image_size % self.size_multiple:
            raise ValueError(f"--backbone {self.name} needs --image-size a multiple of {self.size_multiple} (its "
                             f"deepest features are at 1/{self.size_multiple}), received {image_size}.")

    def build(self, *args, **kwargs):
        return _resolve(self.builder)(*args, **kwargs)


@dataclasses.dataclass(frozen=True)
class Pretext:
    """A pretext: an objective on a backbone, implemented by `module`."""

    name: str
    objective: str
    backbone: str
    module: str
    summary: str
    options: dict = dataclasses.field(default_factory=dict)
    needs_masks: bool = False  # trains on (input, {colour, mask}) pairs: synthetic scenes or pets
    needs_labels: bool = False  # trains on (input, class labels) of a labelled --dataset (the module's `datasets`)
    colorizes: bool = True  # predicts colour (sample grids, Table 3, colorize.py); False: the supervised ceiling
    trains_decoder: bool = True  # False: the network has no decoder, so only its encoder transfers downstream
    overrides: dict = dataclasses.field(default_factory=dict)  # a variant: option values it sets

    @property
    def color_space(self):
        return BACKBONES[self.backbone].color_space

    @property
    def bottleneck(self):
        return BACKBONES[self.backbone].bottleneck

    @property
    def floor(self):
        """The name of the random-init run of the same architecture."""
        return BACKBONES[self.backbone].random_name

    def implementation(self):
        return importlib.import_module(self.module)


BACKBONES = {
    "unet": Backbone(
        "unet", "cgan_colorization.networks.backbones:unet_backbone", "lab", "U-Net", "random", "random",
        power_of_two=True, bottleneck="bottleneck_relu",
        options={
            "skip_dropout": Option(0.0, "U-Net pretexts: per-example probability of zeroing each skip in training, so "
                                        "the colour must also come through the bottleneck (0: the paper)",
                                   low=0, high=1, high_open=True),
            "no_skips": Option(False, "U-Net pretexts: zero every skip, in training and at inference (the ablation "
                                      "without skips; only its encoder transfers downstream)"),
        }),
    "mobilenetv2": Backbone(
        "mobilenetv2", "cgan_colorization.networks.backbones:mobilenet_backbone", "yuv", "MobileNetV2",
        "random-mobilenetv2", "random (MobileNetV2)", size_multiple=32,
        options={
            "backbone_weights": Option(
                "", "a local MobileNetV2 weights file (e.g. Keras' ..._no_top.h5) to start from; empty: random "
                    "init (nothing is downloaded)"),
            "bn_momentum": Option(
                MOBILENET_BN_MOMENTUM, "momentum of every BatchNorm of the MobileNetV2 U-Net (encoder and decoder); "
                f"Keras' own {KERAS_MOBILENET_BN_MOMENTUM} keeps 0.999^n of the initial statistics after n steps, "
                "which suits long runs from ImageNet weights, not a few hundred steps from scratch (README)",
                low=0, high=1, high_open=True),
        }),
}

PRETEXTS = {p.name: p for p in (
    Pretext("gan", "gan", "unet", "cgan_colorization.pretexts.gan",
            "the paper: pix2pix cGAN, BCE + lambda L1",
            options={"l1_weight": Option(100.0, "lambda, the weight of the L1 term in G's loss", low=0)}),
    Pretext("l1", "l1", "unet", "cgan_colorization.pretexts.l1",
            "the same U-Net trained on L1 alone, no discriminator"),
    Pretext("classification", "classification", "unet", "cgan_colorization.pretexts.classification",
            "Zhang et al. 2016: Q ab bins, rebalanced soft cross-entropy, annealed mean",
            options={"temperature": Option(ZHANG_TEMPERATURE, "annealed-mean temperature T", low=0,
                                           low_open=True),
                     "prior_batches": Option(50, "batches of the one streaming pass that estimates the ab prior",
                                             low=1)}),
    Pretext("multitask", "multitask", "unet", "cgan_colorization.pretexts.multitask",
            "colour + segmentation heads trained jointly (needs masks: synthetic or pets)",
            options={"color_weight": Option(1.0, "weight of the colour loss", low=0),
                     "seg_weight": Option(1.0, "weight of the segmentation loss", low=0)},
            needs_masks=True),
    Pretext("multitask-mobilenetv2", "multitask", "mobilenetv2", "cgan_colorization.pretexts.multitask",
            "the multitask source's model: MobileNetV2 U-Net, Y in, UV out, MSE (image size a multiple of 32)",
            needs_masks=True),
    Pretext("supervised", "supervised", "unet", "cgan_colorization.pretexts.supervised",
            "the supervised ceiling: the U-Net encoder trained with the labels of --dataset (e.g. tinyimagenet:PATH), "
            "no colour; only its encoder transfers",
            needs_labels=True, colorizes=False, trains_decoder=False),
)}


def _variant(base, name, summary, **overrides):
    """A registered pretext with some of its options set: its own name, the base's module and options."""
    return dataclasses.replace(PRETEXTS[base], name=name, summary=summary, overrides=overrides)


# Variants that push the colour through the bottleneck (see README, "Skips and the bottleneck").
PRETEXTS.update((v.name, v) for v in (
    _variant("gan", "gan-skipdrop", "the paper's cGAN with each skip zeroed for half the training examples",
             skip_dropout=0.5),
    _variant("gan", "gan-noskip", "the paper's cGAN without skips (ablation; only the encoder transfers)",
             no_skips=True),
    _variant("classification", "classification-skipdrop",
             "Zhang et al.'s classifier with each skip zeroed for half the training examples", skip_dropout=0.5),
))

OBJECTIVES = tuple(dict.fromkeys(p.objective for p in PRETEXTS.values()))
# The paper's pretext: what every command trains, loads and compares with when it is not told otherwise,
# and the row the paper's own numbers sit beside.
PAPER_PRETEXT = "gan"


def checkpoint_label(name, checkpoint):
    """An init's name in folders and tables: NAME, or NAME@CHECKPOINT for any other than the default."""
    return name if checkpoint == DEFAULT_CHECKPOINT else f"{name}@{checkpoint}"


@dataclasses.dataclass(frozen=True)
class PretextRef:
    """A pretext as a study uses it: the registry entry (its name, objective, backbone and the option
    values it sets), the generator checkpoint of its run that is transferred, and the seed of its run
    (None: the training default). Made once where a label enters (`parse_pretexts`, `named`)."""

    entry: Pretext
    checkpoint: str = DEFAULT_CHECKPOINT
    seed: int = None

    @classmethod
    def named(cls, name, checkpoint=DEFAULT_CHECKPOINT, seed=None):
        """The reference to registered pretext `name`, or a one-sentence ValueError."""
        if name not in PRETEXTS:
            raise ValueError(f"the pretexts are {tuple(PRETEXTS)}, received {name!r}.")
        return cls(PRETEXTS[name], checkpoint, seed)

    @property
    def name(self):
        return self.entry.name

    @property
    def backbone(self):
        return self.entry.backbone

    @property
    def options(self):
        """The option values this pretext sets (a variant's overrides)."""
        return self.entry.overrides

    @property
    def label(self):
        return checkpoint_label(self.name, self.checkpoint)

    @property
    def suffix(self):
        """What the run's seed adds to its folder names: "-pseedN" for pretext seed N, "" for the default run."""
        return "" if self.seed is None else f"-pseed{self.seed}"

    @property
    def run_label(self):
        """The label of this pretext run in folders: the label and, where several runs are trained, its seed."""
        return self.label + self.suffix

    def train_values(self):
        """The `TrainConfig` values that make a run of this pretext: objective, backbone, its options, seed."""
        seed = {} if self.seed is None else {"seed": self.seed}
        return dict(self.options, objective=self.entry.objective, backbone=self.backbone, **seed)

    def __hash__(self):  # the entry holds dicts; its name says which it is
        return hash((self.name, self.checkpoint, self.seed))


def parse_pretexts(text, checkpoint=DEFAULT_CHECKPOINT, colorizing=False, checkpoints=CHECKPOINTS):
    """Comma-separated labels, each NAME or NAME@CHECKPOINT, as `PretextRef`s in order without repeats;
    a label without a checkpoint takes `checkpoint`. Only the pretexts that predict colour with
    `colorizing`; only the checkpoints in `checkpoints` (none: plain names). A one-sentence ValueError
    for anything else."""
    known = tuple(name for name, entry in PRETEXTS.items() if entry.colorizes or not colorizing)
    entries = [label.partition("@") for label in text.split(",") if label]
    if not entries or any(name not in known or (at and named not in checkpoints) for name, at, named in entries):
        suffix = f", each optionally followed by @{' or @'.join(checkpoints)}" if checkpoints else ""
        raise ValueError(f"takes names from {known}{suffix}, received {text!r}")
    return tuple(dict.fromkeys(PretextRef(PRETEXTS[name], named or checkpoint) for name, _, named in entries))


def with_seeds(refs, pretext_seeds):
    """`refs` trained `pretext_seeds` times each: with one, as given (each run at the training default seed);
    with more, every ref at seeds 0 .. N-1, in order, for the spread between pretext runs."""
    if pretext_seeds == 1:
        return tuple(refs)
    return tuple(dataclasses.replace(ref, seed=seed) for ref in refs for seed in range(pretext_seeds))


def pretext(objective, backbone="unet", values=None):
    """The registry entry of an objective on a backbone, or a one-sentence ValueError. With `values`
    (a run's option values), the variant whose overrides they match (the most specific one), named
    with any other option that differs from its value, e.g. "gan[skip_dropout=0.3]"."""
    if backbone not in BACKBONES:
        raise ValueError(f"--backbone must be one of {tuple(BACKBONES)}, received {backbone!r}.")
    matches = [e for e in PRETEXTS.values() if e.objective == objective and e.backbone == backbone
               and all((values or {}).get(k, options()[k].default) == v for k, v in e.overrides.items())]
    if matches:
        entry = max(matches, key=lambda e: len(e.overrides))
        if values:
            owned = {**BACKBONES[backbone].options, **entry.options}
            other = {k: values[k] for k in sorted(owned) if k in values and k != "backbone_weights"
                     and values[k] != entry.overrides.get(k, owned[k].default)}
            if other:
                label = ",".join(f"{k}={v}" for k, v in other.items())
                entry = dataclasses.replace(entry, name=f"{entry.name}[{label}]",
                                            overrides={**entry.overrides, **other})
        return entry
    if objective not in OBJECTIVES:
        raise ValueError(f"--objective must be one of {OBJECTIVES}, received {objective!r}.")
    offered = [p.objective for p in PRETEXTS.values() if p.backbone == backbone]
    raise ValueError(f"--backbone {backbone} is offered with --objective {' or '.join(offered)}, "
                     f"received --objective {objective!r}.")


def options():
    """Every pretext's and backbone's options, {name: Option} (a name is declared once)."""
    merged = {}
    for entry in (*BACKBONES.values(), *PRETEXTS.values()):
        for name, option in entry.options.items():
            if name in merged and merged[name] != option:
                raise AssertionError(f"option {name!r} is declared twice with different meanings")
            merged[name] = option
    return merged


def owners(option_name):
    """The pretexts that use an option (a backbone's option belongs to every pretext on it)."""
    return [p.name for p in PRETEXTS.values()
            if option_name in p.options or option_name in BACKBONES[p.backbone].options]
