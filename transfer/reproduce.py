"""The whole protocol in one command: pretext, then both downstream tasks with both inits over
several seeds, then `report.md` with the paper's Table 3 and Table 4 shapes and its figures. The
options become one `transfer.study.Study` (`resolve`); each part below runs from a study, so the
scaling study's parts are these too."""

import dataclasses
import itertools
import json
import os
import sys
import time

from cgan_colorization.apps.evaluation import bottleneck_health, evaluate_colorizer
from cgan_colorization.apps.inference import load_colorizer
from cgan_colorization.constants import DEFAULT_CHECKPOINT
from cgan_colorization.engine import schema
from cgan_colorization.engine.config import SECTION as COLORIZER_SECTION, TrainConfig, load_config
from cgan_colorization.engine.training import SUMMARY_FILE, train
from cgan_colorization.pretexts import registry
from data.labelled import TASKS
from data.pipeline import parse_dataset, pretext_dataset
from transfer import feature_eval, options
from transfer.config import FinetuneConfig, ProbeConfig
from transfer.experiment import run_finetune
from transfer.report import write_report
from transfer.study import Downstream, PretextStep, Probes, Study


def resolve(args):
    """The study of the options (`options.ReproduceOptions`, its preset already applied), its pretext
    labels read into `registry.PretextRef`s; `Study.record()` is saved to OUT/config.json."""
    source = (args.voc and f"voc:{args.voc}") or args.labelled  # the data of both tasks
    datasets = dict(classification=args.classification_dataset or source,
                    segmentation=args.segmentation_dataset or source)
    needed = set(args.tasks) | ({"classification"} if args.probes else set())  # the probes read the classification data
    if any(datasets[task] is None for task in needed):
        raise ValueError("--preset paper needs the downstream data: pass --voc PATH/VOCdevkit/VOC2012.")
    pretexts = registry.parse_pretexts(args.pretexts, args.checkpoint)
    if args.colorizer and len({ref.name for ref in pretexts}) > 1:
        raise ValueError("--colorizer reuses one colorizer: give a single pretext in --pretexts with it.")
    if args.colorizer and args.pretext_seeds > 1:
        raise ValueError("--colorizer reuses one colorizer run: leave --pretext-seeds at 1 with it.")
    return Study(
        preset=args.preset, out=args.out or f"runs/reproduce-{args.preset}", seeds=args.seeds,
        pretexts=registry.with_seeds(pretexts, args.pretext_seeds), checkpoint=args.checkpoint,
        pretext_seeds=args.pretext_seeds,
        pretext=PretextStep(dataset=args.pretext_dataset, multitask_dataset=args.multitask_dataset,
                            image_size=args.image_size, base_filters=args.base_filters, epochs=args.pretext_epochs,
                            steps_per_epoch=args.pretext_steps, colorizer=args.colorizer),
        downstream=Downstream(datasets=datasets, tasks=tuple(task for task in TASKS if task in args.tasks),
                              void_index=args.void_index, epoch_scale=args.downstream_scale,
                              train_size=args.train_size, eval_size=args.eval_size,
                              label_fractions=tuple(args.label_fractions)),
        probes=Probes(train_size=args.probe_train_size, test_size=args.eval_size or ProbeConfig.test_size,
                      random_seeds=args.seeds, enabled=args.probes))


def colorizer_folder(study, ref):
    """Where the colorizer of `ref` is trained: the study's --colorizer, OUT/colorizer for the paper's
    pretext (the paper's protocol has only that one), else OUT/colorizer-NAME; -pseedN after either for
    pretext seed N."""
    if study.pretext.colorizer:
        return study.pretext.colorizer
    name = "colorizer" if ref.name == registry.PAPER_PRETEXT else f"colorizer-{ref.name}"
    return os.path.join(study.out, name + ref.suffix)


def run_pretext(study, ref, log=print):
    """Trains (or reuses) the colorizer of one pretext (a `registry.PretextRef`) and scores the generator
    of its checkpoint; returns (run folder, Table 3 result)."""
    run_dir, step, checkpoint = colorizer_folder(study, ref), study.pretext, ref.checkpoint
    config = TrainConfig(**schema.preset(study.preset, COLORIZER_SECTION))
    overrides = dict(ref.train_values(), dataset=step.dataset_of(ref), out=run_dir, image_size=step.image_size,
                     base_filters=step.base_filters, epochs=step.epochs, steps_per_epoch=step.steps_per_epoch,
                     max_photos_per_class=step.max_photos_per_class)
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if not os.path.isfile(os.path.join(run_dir, SUMMARY_FILE)):
        log(f"[pretext] training the {ref.name} colorizer in {run_dir}")
        train(config, verbose=2)
    else:
        log(f"[pretext] reusing the finished colorizer in {run_dir}")
        config = load_config(run_dir)
    eval_path = os.path.join(run_dir, "eval.json" if checkpoint == DEFAULT_CHECKPOINT else f"eval_{checkpoint}.json")
    result = None
    if os.path.isfile(eval_path):
        with open(eval_path) as f:
            result = json.load(f)
    # A score is reused only if it says which weights it scored and they are the ones asked for.
    if result is not None and (result.get("checkpoint") or {}).get("checkpoint") != checkpoint:
        result = None
    if result is None or "bottleneck" not in result:
        colorizer = load_colorizer(run_dir, checkpoint=checkpoint)
        source = parse_dataset(config.dataset, config.val_fraction, config.seed,
                               max_photos_per_class=config.max_photos_per_class)
        ds = pretext_dataset(source, "val", image_size=config.image_size, batch_size=16, seed=config.seed,
                             num_classes=config.num_classes, val_size=config.val_size,
                             color_space=colorizer.color_space)
        if ref.entry.colorizes:
            result = result or evaluate_colorizer(colorizer.predict_ab, ds, color_space=colorizer.color_space)
        else:  # the supervised ceiling: no colour to score, only its bottleneck
            result = {}
        result["objective"] = ref.name
        result["checkpoint"] = colorizer.checkpoint
        result["bottleneck"] = bottleneck_health(colorizer.network, ds, colorizer.bottleneck)
        with open(eval_path, "w") as f:
            json.dump(result, f, indent=2)
    return run_dir, result


def task_values(study, task):
    """The fine-tuning values of `task`: its preset's, with the study's epoch scale, caps and overrides."""
    runs = study.downstream
    values = schema.preset(study.preset, task)
    for key in ("baseline_epochs", "frozen_epochs", "unfrozen_epochs"):
        values[key] = max(1, round(values[key] * runs.epoch_scale))
    if runs.train_size:
        values["train_size"] = runs.train_size
    if runs.eval_size:
        values["val_size"] = values["test_size"] = runs.eval_size
    values.update(runs.task_overrides.get(task, {}))  # e.g. a study's own split sizes
    return values


def run_downstream(study, colorizers, log=print, floors=True, colorizations=True):
    """Every (seed, task, init) run of `study`, with one colorization init per pretext in `colorizers`
    ({`registry.PretextRef`: run folder}) and the random floor of each backbone (`floors`,
    `colorizations`: which of the two to run); finished runs (with metrics.json) are read back, not
    redone."""
    results = []
    # One from-scratch floor per backbone, built like that backbone's first colorizer; every run
    # takes the size (and U-Net width) of the first colorizer.
    backbones = {}
    for ref, path in colorizers.items():
        backbones.setdefault(ref.backbone, path)
    architecture = load_config(next(iter(colorizers.values())))
    # (init, name in logs, name in folders, colorizer, backbone, checkpoint); the paper's pretext keeps the
    # paper's name for its init, "colorization"
    floor_names = {backbone: registry.BACKBONES[backbone].random_name for backbone in backbones}
    runs = [("random", floor_names[backbone], floor_names[backbone], path, backbone, DEFAULT_CHECKPOINT)
            for backbone, path in backbones.items()] if floors else []
    runs += [("colorization", ref.run_label,
              ("colorization" if ref.label == registry.PAPER_PRETEXT else ref.label) + ref.suffix, path, None,
              ref.checkpoint) for ref, path in colorizers.items()] if colorizations else []
    for seed in range(study.seeds):
        for task in study.downstream.tasks:
            values = task_values(study, task)
            for (init, name, folder, colorizer_dir, backbone, checkpoint), fraction in itertools.product(
                    runs, study.downstream.fractions(task)):
                parent = os.path.join(study.out, f"seed{seed}", task)
                if fraction < 1:
                    folder += f"-labels{100 * fraction:g}"
                metrics_path = os.path.join(parent, folder, "metrics.json")
                if os.path.isfile(metrics_path):
                    with open(metrics_path) as f:
                        results.append(dict(json.load(f), folder=os.path.join(parent, folder)))
                    continue
                log(f"[downstream] seed {seed}, {task}, {name} init"
                    + (f", {100 * fraction:g} % of the labels" if fraction < 1 else ""))
                config = FinetuneConfig(task=task, init=init, colorizer=colorizer_dir, checkpoint=checkpoint,
                                        dataset=study.downstream.datasets[task], seed=seed, out=parent,
                                        run_name=folder, void_index=study.downstream.void_index,
                                        image_size=architecture.image_size, base_filters=architecture.base_filters,
                                        backbone=backbone, label_fraction=fraction, **values)
                results.append(dict(run_finetune(config, verbose=2, log=log), folder=os.path.join(parent, folder)))
    return results


def run_probes(study, colorizers, log=print):
    """The linear probes of every colorizer ({`registry.PretextRef`: run folder}) and of the random floors
    on the study's classification data, in OUT/probes (read back when finished)."""
    out = os.path.join(study.out, "probes")
    path = os.path.join(out, "probes.json")
    if os.path.isfile(path):
        log(f"[probes] reusing {path}")
        with open(path) as f:
            return json.load(f)
    log("[probes] linear probes per encoder level")
    config = ProbeConfig(colorizers=tuple((path, ref.checkpoint) for ref, path in colorizers.items()),
                         dataset=study.downstream.datasets["classification"], out=out,
                         random_seeds=study.probes.random_seeds, train_size=study.probes.train_size,
                         void_index=study.downstream.void_index, test_size=study.probes.test_size)
    return feature_eval.run_probes(config, log=log)


def main(argv=None):
    args = options.reproduce_parser().parse(argv)
    try:
        study = resolve(args)
        os.makedirs(study.out, exist_ok=True)
        with open(os.path.join(study.out, "config.json"), "w") as f:
            json.dump(study.record(), f, indent=2)
        start = time.time()
        colorizers, table3 = {}, {}
        for ref in study.pretexts:
            colorizers[ref], table3[ref] = run_pretext(study, ref)
        results = run_downstream(study, colorizers)
        probes = run_probes(study, colorizers) if study.probes.enabled else None
        path = write_report(study, colorizers, table3, results, seconds=time.time() - start, probes=probes)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"report: {path}")
    return path
