"""A study as one typed value: the pretexts it trains and how, the downstream runs and probes that score
them, over how many seeds. `reproduce.py` resolves one from its options (`transfer.reproduce.resolve`);
`scaling_study.py` one per pretext size and one for the random floor (`transfer.scaling.size_study`);
`transfer.reproduce` runs any of them part by part."""

import dataclasses

from cgan_colorization.constants import DEFAULT_CHECKPOINT
from data import TASKS


@dataclasses.dataclass(frozen=True)
class PretextStep:
    """How a study trains its colorizers: their data, and what it changes of the colorizer preset
    (None: the preset's value)."""

    dataset: str
    multitask_dataset: str = None  # the data of the pretexts that need masks, when `dataset` has none
    image_size: int = None
    base_filters: int = None
    epochs: int = None
    steps_per_epoch: int = None
    max_photos_per_class: int = None
    colorizer: str = None  # an existing run folder to reuse (a study of a single pretext)

    def dataset_of(self, ref):
        """The pretext data of `ref` (a `registry.PretextRef`)."""
        return (ref.entry.needs_masks and self.multitask_dataset) or self.dataset


@dataclasses.dataclass(frozen=True)
class Downstream:
    """The fine-tuning runs of a study: each task on its data, from every colorizer and from scratch, with
    what it changes of the task's preset."""

    datasets: dict  # {task: labelled data}; None where the study has none
    tasks: tuple = TASKS  # in the tables' order
    void_index: int = None
    epoch_scale: float = 1.0  # multiplies the preset's epochs
    train_size: int = None  # cap on the training images (None: the preset's)
    eval_size: int = None  # cap on the validation and test images (None: the preset's)
    label_fractions: tuple = (1.0,)  # shares of the training labels
    task_fractions: dict = dataclasses.field(default_factory=dict)  # {task: shares}, instead of label_fractions
    task_overrides: dict = dataclasses.field(default_factory=dict)  # {task: {FinetuneConfig field: value}}

    def fractions(self, task):
        return tuple(self.task_fractions.get(task) or self.label_fractions)


@dataclasses.dataclass(frozen=True)
class Probes:
    """The linear probes of a study's colorizers and random floors on its classification data."""

    train_size: int  # 0: every training image
    test_size: int  # 0: every test image
    random_seeds: int  # random inits of each backbone probed (the floor's spread)
    enabled: bool = True


@dataclasses.dataclass(frozen=True)
class Study:
    """One experiment: its pretexts (`registry.PretextRef`s, one per pretext run: `pretext_seeds` of each)
    trained by `pretext`, scored by `downstream` over `seeds` and by `probes`, everything under `out`;
    `preset` names the colorizer and task presets its parts start from."""

    preset: str
    out: str
    seeds: int
    pretexts: tuple
    pretext: PretextStep
    downstream: Downstream
    probes: Probes
    checkpoint: str = DEFAULT_CHECKPOINT  # the one of the pretexts named without one
    pretext_seeds: int = 1  # runs of each pretext (1: one run at the training default seed)

    def record(self):
        """The study as OUT/config.json and the report's configuration give it, under reproduce.py's
        option names."""
        step, runs, probes = self.pretext, self.downstream, self.probes
        return dict(pretext_dataset=step.dataset, classification_dataset=runs.datasets.get("classification"),
                    segmentation_dataset=runs.datasets.get("segmentation"), seeds=self.seeds, preset=self.preset,
                    out=self.out, colorizer=step.colorizer,
                    pretexts=list(dict.fromkeys(ref.label for ref in self.pretexts)),
                    checkpoint=self.checkpoint, multitask_dataset=step.multitask_dataset,
                    image_size=step.image_size, pretext_epochs=step.epochs, pretext_steps=step.steps_per_epoch,
                    void_index=runs.void_index, downstream_scale=runs.epoch_scale, train_size=runs.train_size,
                    tasks=list(runs.tasks), label_fractions=list(runs.label_fractions), probes=probes.enabled,
                    probe_train_size=probes.train_size, eval_size=runs.eval_size, base_filters=step.base_filters,
                    pretext_seeds=self.pretext_seeds)
