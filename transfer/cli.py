"""Command-line entry points of the downstream scripts; their parsers are generated from the options
dataclasses of `transfer.config` and `transfer.options`."""

import argparse
import dataclasses
import json
import os
import sys

from cgan_colorization.constants import CHECKPOINTS
from cgan_colorization.engine import runtime
from cgan_colorization.engine.schema import build_parser
from data import TASKS
from transfer import options
from transfer.config import DiagnoseConfig, FinetuneConfig, ProbeConfig


def train_main(argv=None):
    """`python train_colorizer.py` (`cgan-train`): the colorizer's training, with its `--probe` (a feature
    probe belongs to this layer, so the entry point that offers it is here)."""

    def probe(config, run_dir):
        from transfer.online_probe import make_probe  # TensorFlow loads here, after the runtime settings

        return make_probe(config, run_dir)

    from cgan_colorization.apps.cli import train_main as train_colorizer

    return train_colorizer(argv, probe=probe)


def classifier_main(argv=None):
    """`python finetune_classifier.py` (`cgan-finetune-classifier`)."""
    return finetune_main("classification", argv)


def segmenter_main(argv=None):
    """`python finetune_segmenter.py` (`cgan-finetune-segmenter`)."""
    return finetune_main("segmentation", argv)


def reproduce_main(argv=None):
    """`python reproduce.py` (`cgan-reproduce`): the whole protocol and its report."""
    runtime.configure()
    options.reproduce_parser().parse(argv)  # a bad value is refused before TensorFlow loads
    from transfer.reproduce import main  # TensorFlow loads here, after the runtime settings

    return main(argv)


def scaling_main(argv=None):
    """`python scaling_study.py` (`cgan-scaling-study`): the data-scaling study on Tiny ImageNet."""
    runtime.configure()
    options.scaling_parser().parse(argv)  # a bad value is refused before TensorFlow loads
    from transfer.scaling import main  # TensorFlow loads here, after the runtime settings

    return main(argv)


def finetune_parser(task, description=None):
    """The parser of the fine-tuning flags of `task` (presets: the `task` section of configs/)."""
    what = "multi-label classifier (encoder + 2 x Dense 4096)" if task == "classification" else \
        "U-Net segmenter (the whole generator + a softmax output)"
    description = description or (
        f"Fine-tune a {what} from the colorizer's weights in two phases (frozen, then unfrozen), or from scratch "
        "with --init random, and score it on the test split. --preset paper sets the paper's epochs, rates and "
        "batch size; --config RUN/config.json re-runs a run as it was.")
    return build_parser(description, FinetuneConfig, section=task, fixed={"task": task})


def diagnose_parser(task="segmentation"):
    """The fine-tuning flags of `task` plus the diagnosis' own `--task` and `--statistics-batches`."""
    return build_parser(
        "Train one downstream model as the fine-tuning scripts do, then score the same weights in inference "
        "mode, with batch statistics and with re-estimated BatchNorm statistics (encoder, decoder, all), and "
        "measure how far the moving statistics are from the data's. The presets' values below are those of "
        f"--task {task}.", DiagnoseConfig, section=task)


def _task_of(argv):
    """The --task of a diagnose_batchnorm.py command line (or of its --config file), which decides the presets."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", choices=TASKS)
    pre.add_argument("--config")
    known = pre.parse_known_args(argv)[0]
    if known.task is None and known.config and os.path.isfile(known.config):
        with open(known.config) as f:
            try:
                known.task = json.load(f).get("task")
            except (ValueError, AttributeError):
                pass  # the full parser refuses the file in one sentence
    return known.task if known.task in TASKS else DiagnoseConfig.task


def diagnose_main(argv=None):
    """`python diagnose_batchnorm.py` (`cgan-diagnose-batchnorm`): one run, then the same weights scored in
    inference mode, with batch statistics and with re-estimated BatchNorm statistics."""
    runtime.configure()
    config = diagnose_parser(_task_of(argv)).parse(argv)
    from transfer.bn_diagnosis import diagnose  # TensorFlow loads here, after the runtime settings

    try:
        result = diagnose(config, config.statistics_batches)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2)
    print(json.dumps(result["inspection"], indent=2))
    return result


def finetune_main(task, argv=None):
    """`python finetune_classifier.py` / `python finetune_segmenter.py`."""
    runtime.configure()
    config = finetune_parser(task).parse(argv)
    from cgan_colorization.engine.distribute import peer_failure
    from transfer.experiment import run_finetune

    try:
        result = run_finetune(config)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2)
    except Exception as error:  # noqa: BLE001 - a lost worker is explained; anything else is re-raised
        message = peer_failure(error, " (the run starts over)")
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr, flush=True)
        os._exit(2)  # the interpreter's shutdown can block on the lost worker's collectives
    print(json.dumps({k: v for k, v in result["test"].items() if not isinstance(v, (dict, list))}, indent=2))
    return result


def features_parser():
    return build_parser(
        "Linear probes on frozen features (Goyal et al. 2019): for every encoder level of each "
        "colorizer and of the random init of its backbone, one linear SVM per class on pooled, L2-normalized "
        "features, cost by 3-fold cross-validation; test mAP per level, and low-shot curves (on a single-label set "
        "such as tinyimagenet:PATH instead one linear softmax classifier per level, rate and weight decay chosen "
        "on the validation split: test top-1, and a weighted kNN classifier on the same features: test kNN top-1). "
        "Writes OUT/probes.json, OUT/probes.png and OUT/low_shot.png.", ProbeConfig)


def features_main(argv=None):
    """`python evaluate_features.py` (`cgan-evaluate-features`): linear probes per encoder level."""
    runtime.configure()
    config = features_parser().parse(argv)
    checkpoints = CHECKPOINTS if config.checkpoint == "both" else (config.checkpoint,)
    pairs = []  # a run folder given alone is probed at --checkpoint (at each for 'both')
    for spec in config.colorizers:
        pairs += [tuple(spec)] if isinstance(spec, (tuple, list)) else [(spec, c) for c in checkpoints]
    config = dataclasses.replace(config, colorizers=tuple(pairs))
    from transfer.feature_eval import check_inits, run_probes

    try:
        return run_probes(check_inits(config))
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2)
