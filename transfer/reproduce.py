"""The whole protocol in one command: pretext, then both downstream tasks with both inits over
several seeds, then `report.md` with the paper's Table 3 and Table 4 shapes and its figures."""

import dataclasses
import itertools
import json
import os
import sys
import time

from cgan_colorization import registry, schema
from cgan_colorization.config import SECTION as COLORIZER_SECTION, TrainConfig, load_config
from cgan_colorization.constants import DEFAULT_CHECKPOINT
from cgan_colorization.evaluation import bottleneck_health, evaluate_colorizer
from cgan_colorization.inference import load_colorizer
from cgan_colorization.training import SUMMARY_FILE, train
from data.labelled import TASKS
from data.pipeline import parse_dataset, pretext_dataset
from transfer import feature_eval, options
from transfer.config import FinetuneConfig, ProbeConfig
from transfer.experiment import run_finetune
from transfer.report import plan_record, write_report

def resolve(args):
    """The options (`options.ReproduceOptions`, its preset already applied) as one dict saved to
    OUT/config.json (`report.plan_record`); its pretexts are read into `registry.PretextRef`s here."""
    source = (args.voc and f"voc:{args.voc}") or args.labelled  # the data of both tasks
    values = dict(seeds=args.seeds, pretext_dataset=args.pretext_dataset,
                  classification_dataset=args.classification_dataset or source,
                  segmentation_dataset=args.segmentation_dataset or source)
    needed = set(args.tasks) | ({"classification"} if args.probes else set())  # the probes read the classification data
    if any(values[f"{task}_dataset"] is None for task in needed):
        raise ValueError("--preset paper needs the downstream data: pass --voc PATH/VOCdevkit/VOC2012.")
    pretexts = registry.parse_pretexts(args.pretexts, args.checkpoint)
    if args.colorizer and len({ref.name for ref in pretexts}) > 1:
        raise ValueError("--colorizer reuses one colorizer: give a single pretext in --pretexts with it.")
    values.update(preset=args.preset, out=args.out or f"runs/reproduce-{args.preset}", colorizer=args.colorizer,
                  pretexts=pretexts, checkpoint=args.checkpoint, multitask_dataset=args.multitask_dataset,
                  image_size=args.image_size, pretext_epochs=args.pretext_epochs,
                  pretext_steps=args.pretext_steps, void_index=args.void_index,
                  downstream_scale=args.downstream_scale, train_size=args.train_size,
                  tasks=[task for task in TASKS if task in args.tasks],  # in the tables' order
                  label_fractions=list(args.label_fractions), probes=args.probes,
                  probe_train_size=args.probe_train_size,
                  eval_size=args.eval_size, base_filters=args.base_filters)
    return values


def colorizer_folder(plan, ref):
    """Where the colorizer of `ref` is trained: the plan's --colorizer, OUT/colorizer for the paper's
    pretext (the paper's protocol has only that one), else OUT/colorizer-NAME."""
    if plan["colorizer"]:
        return plan["colorizer"]
    return os.path.join(plan["out"], "colorizer" if ref.name == registry.PAPER_PRETEXT else f"colorizer-{ref.name}")


def run_pretext(plan, ref, log=print):
    """Trains (or reuses) the colorizer of one pretext (a `registry.PretextRef`) and scores the generator
    of its checkpoint; returns (run folder, Table 3 result)."""
    name, checkpoint, entry = ref.name, ref.checkpoint, ref.entry
    run_dir = colorizer_folder(plan, ref)
    config = TrainConfig(**schema.preset(plan["preset"], COLORIZER_SECTION))
    dataset = (entry.needs_masks and plan.get("multitask_dataset")) or plan["pretext_dataset"]
    overrides = dict(ref.train_values(), dataset=dataset, out=run_dir,
                     image_size=plan["image_size"], base_filters=plan["base_filters"],
                     epochs=plan["pretext_epochs"], steps_per_epoch=plan["pretext_steps"],
                     max_photos_per_class=plan.get("max_photos_per_class"))
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if not os.path.isfile(os.path.join(run_dir, SUMMARY_FILE)):
        log(f"[pretext] training the {name} colorizer in {run_dir}")
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
        if entry.colorizes:
            result = result or evaluate_colorizer(colorizer.predict_ab, ds, color_space=colorizer.color_space)
        else:  # the supervised ceiling: no colour to score, only its bottleneck
            result = {}
        result["objective"] = name
        result["checkpoint"] = colorizer.checkpoint
        result["bottleneck"] = bottleneck_health(colorizer.network, ds, colorizer.bottleneck)
        with open(eval_path, "w") as f:
            json.dump(result, f, indent=2)
    return run_dir, result


def run_downstream(plan, colorizers, log=print, floors=True, colorizations=True):
    """Every (seed, task, init) run, with one colorization init per pretext in `colorizers`
    ({`registry.PretextRef`: run folder}) and the random floor of each backbone (`floors`,
    `colorizations`: which of the two to run); finished runs (with metrics.json) are read back, not
    redone. `plan["task_fractions"]` ({task: shares}) may give a task its own label shares, and
    `plan["task_overrides"]` ({task: {option: value}}) its own fine-tuning options."""
    results = []
    preset = plan["preset"]
    # One from-scratch floor per backbone, built like that backbone's first colorizer; every run
    # takes the size (and U-Net width) of the first colorizer.
    backbones = {}
    for ref, path in colorizers.items():
        backbones.setdefault(ref.backbone, path)
    architecture = load_config(next(iter(colorizers.values())))
    for seed in range(plan["seeds"]):
        for task in plan.get("tasks") or TASKS:
            values = schema.preset(preset, task)
            for key in ("baseline_epochs", "frozen_epochs", "unfrozen_epochs"):
                values[key] = max(1, round(values[key] * plan["downstream_scale"]))
            if plan["train_size"]:
                values["train_size"] = plan["train_size"]
            if plan["eval_size"]:
                values["val_size"] = values["test_size"] = plan["eval_size"]
            values.update((plan.get("task_overrides") or {}).get(task, {}))  # e.g. a study's own split sizes
            runs = [("random", registry.BACKBONES[backbone].random_name, path, backbone, DEFAULT_CHECKPOINT)
                    for backbone, path in backbones.items()] if floors else []
            runs += [("colorization", ref.label, path, None, ref.checkpoint) for ref, path in colorizers.items()] \
                if colorizations else []
            fractions = (plan.get("task_fractions") or {}).get(task) or plan.get("label_fractions") or [1.0]
            for (init, name, colorizer_dir, backbone, checkpoint), fraction in itertools.product(runs, fractions):
                parent = os.path.join(plan["out"], f"seed{seed}", task)
                folder = "colorization" if name == registry.PAPER_PRETEXT else name  # the paper's name for its init
                if fraction < 1:
                    folder += f"-labels{100 * fraction:g}"
                metrics_path = os.path.join(parent, folder, "metrics.json")
                if os.path.isfile(metrics_path):
                    with open(metrics_path) as f:
                        results.append(json.load(f))
                    continue
                log(f"[downstream] seed {seed}, {task}, {name} init"
                    + (f", {100 * fraction:g} % of the labels" if fraction < 1 else ""))
                config = FinetuneConfig(task=task, init=init, colorizer=colorizer_dir, checkpoint=checkpoint,
                                        dataset=plan[f"{task}_dataset"], seed=seed, out=parent,
                                        run_name=folder,
                                        void_index=plan["void_index"], image_size=architecture.image_size,
                                        base_filters=architecture.base_filters, backbone=backbone,
                                        label_fraction=fraction, **values)
                results.append(run_finetune(config, verbose=2, log=log))
    return results


def _probe_test_size(plan):
    """The probe's cap on test images: the plan's own (0: all of them), else --eval-size, else the default."""
    if plan.get("probe_test_size") is not None:
        return plan["probe_test_size"]
    return plan["eval_size"] or ProbeConfig.test_size


def run_probes(plan, colorizers, log=print):
    """The linear probes of every colorizer and of the random floors (one per seed) on the
    classification data, in OUT/probes (read back when finished)."""
    out = os.path.join(plan["out"], "probes")
    path = os.path.join(out, "probes.json")
    if os.path.isfile(path):
        log(f"[probes] reusing {path}")
        with open(path) as f:
            return json.load(f)
    log("[probes] linear probes per encoder level")
    specs = tuple((path, ref.checkpoint) for ref, path in colorizers.items())
    config = ProbeConfig(colorizers=specs, dataset=plan["classification_dataset"], out=out,
                         random_seeds=plan.get("probe_random_seeds", plan["seeds"]),
                         train_size=plan["probe_train_size"], void_index=plan["void_index"],
                         test_size=_probe_test_size(plan))
    return feature_eval.run_probes(config, log=log)


def main(argv=None):
    args = options.reproduce_parser().parse(argv)
    try:
        plan = resolve(args)
        os.makedirs(plan["out"], exist_ok=True)
        with open(os.path.join(plan["out"], "config.json"), "w") as f:
            json.dump(plan_record(plan), f, indent=2)
        start = time.time()
        colorizers, table3 = {}, {}
        for ref in plan["pretexts"]:
            colorizers[ref], table3[ref] = run_pretext(plan, ref)
        results = run_downstream(plan, colorizers)
        probes = run_probes(plan, colorizers) if plan.get("probes") else None
        path = write_report(plan, colorizers, table3, results, seconds=time.time() - start, probes=probes)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"report: {path}")
    return path
