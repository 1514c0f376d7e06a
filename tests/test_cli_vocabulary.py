"""One command-line vocabulary: the flags the scripts share have one name and one meaning, older
spellings still parse, text options list their values, and bad values stop with exit status 2
before TensorFlow loads."""

import argparse
import subprocess
import sys

import pytest

from benchmarks import benchmark, collective_threads, gpu_check, precision_run, probe_cost
from cgan_colorization.apps import cli
from cgan_colorization.constants import TEXT_CHOICES
from tests.conftest import ROOT
from transfer import cli as transfer_cli, options, verdict

PARSERS = {
    "train_colorizer.py": cli.train_parser,
    "evaluate_colorizer.py": cli.evaluate_parser,
    "colorize.py": cli.colorize_parser,
    "export_colorizer.py": cli.export_parser,
    "cache_images.py": cli.cache_parser,
    "demo.py": cli.demo_parser,
    "finetune_classifier.py": lambda: transfer_cli.finetune_parser("classification"),
    "finetune_segmenter.py": lambda: transfer_cli.finetune_parser("segmentation"),
    "diagnose_batchnorm.py": transfer_cli.diagnose_parser,
    "evaluate_features.py": transfer_cli.features_parser,
    "reproduce.py": options.reproduce_parser,
    "scaling_study.py": options.scaling_parser,
    "verdict_study.py": verdict.build_parser,
    "benchmarks/benchmark.py": benchmark.build_parser,
    "benchmarks/gpu_check.py": gpu_check.build_parser,
    "benchmarks/collective_threads.py": collective_threads.build_parser,
    "benchmarks/precision_run.py": precision_run.build_parser,
    "benchmarks/probe_cost.py": probe_cost.build_parser,
}
# Older spellings that must keep working, hidden from --help, and the flag they now mean.
ALIASES = {
    "evaluate_colorizer.py": {"--run": "--colorizer", "--weights": "--colorizer"},
    "colorize.py": {"--weights": "--colorizer", "--run": "--colorizer"},
    "export_colorizer.py": {"--weights": "--colorizer", "--run": "--colorizer"},
    "cache_images.py": {"--out": "--cache"},
    "train_colorizer.py": {"--num-classes": "--synthetic-classes"},
    "benchmarks/benchmark.py": {"--cache-dir": "--cache"},
    "benchmarks/gpu_check.py": {"--cache-dir": "--cache"},
}
# A flag that takes one value more than elsewhere, said in its help.
EXTENDED = {("evaluate_features.py", "--checkpoint"): ("both",)}
REQUIRED = {"colorize.py": ["photo.jpg"], "cache_images.py": ["--dataset", "folder:photos"]}
# One concept, one flag: where each must appear, and a word its help must use.
CONCEPTS = {
    "--colorizer": (("evaluate_colorizer.py", "colorize.py", "export_colorizer.py", "finetune_classifier.py",
                     "finetune_segmenter.py", "diagnose_batchnorm.py", "evaluate_features.py", "reproduce.py"),
                    "colorizer"),
    "--cache": (("train_colorizer.py", "evaluate_colorizer.py", "cache_images.py", "benchmarks/benchmark.py",
                 "benchmarks/gpu_check.py"), "cache"),
}


def visible(parser):
    """{flag: action} of the options --help shows."""
    return {flag: action for action in parser._actions if action.help != argparse.SUPPRESS
            for flag in action.option_strings}


@pytest.fixture(scope="module")
def parsers():
    return {name: build() for name, build in PARSERS.items()}


def test_each_concept_has_one_flag_everywhere(parsers):
    for flag, (scripts, word) in CONCEPTS.items():
        for script in scripts:
            shown = visible(parsers[script])
            assert flag in shown, f"{script} lacks {flag}"
            assert word in shown[flag].help.lower(), (script, shown[flag].help)
    for script, parser in parsers.items():
        shown = visible(parser)
        for old in ("--run", "--weights", "--cache-dir"):
            assert old not in shown, f"{script} still shows {old}"
        assert not [f for f in shown if f.startswith("--no-no-")], script


def test_older_spellings_still_parse_to_the_new_flag(parsers):
    for script, aliases in ALIASES.items():
        parser = parsers[script]
        dest = {flag: action.dest for action in parser._actions for flag in action.option_strings}
        for old, new in aliases.items():
            assert dest[old] == dest[new], (script, old, new)
            args = parser.parse_args([*REQUIRED.get(script, []), old, "7"])
            assert str(getattr(args, dest[new])) == "7", (script, old)


def test_shared_flags_mean_the_same_in_every_script(parsers):
    by_flag = {}
    for script, parser in parsers.items():
        for flag, action in visible(parser).items():
            by_flag.setdefault(flag, []).append((script, action))
    for flag, uses in by_flag.items():
        choices = {tuple(c for c in action.choices if c not in EXTENDED.get((script, flag), ()))
                   if action.choices else None for script, action in uses}
        assert len(choices) == 1, (flag, [(s, a.choices) for s, a in uses])
        if any(action.dest in TEXT_CHOICES for _, action in uses):
            assert choices == {TEXT_CHOICES[uses[0][1].dest]}, flag
    for flag in ("--strategy", "--mixed-precision", "--init", "--unfrozen-bn", "--split-mode", "--checkpoint",
                 "--resize-mode"):
        assert by_flag[flag] and all(action.choices for _, action in by_flag[flag]), flag


def test_help_shows_each_presets_value(parsers):
    text = parsers["finetune_classifier.py"].format_help()
    assert "(fast 1024, paper unset)" in " ".join(text.split())  # the paper preset uses the whole split
    assert "(fast 6, paper 20)" in " ".join(parsers["train_colorizer.py"].format_help().split())
    diagnose = parsers["diagnose_batchnorm.py"].format_help()
    assert "--task {classification,segmentation}" in diagnose and "--statistics-batches" in diagnose


@pytest.mark.parametrize("script, argv", [
    ("reproduce.py", ["--pretexts", "jigsaw"]),
    ("reproduce.py", ["--tasks", "detection"]),
    ("finetune_classifier.py", ["--init", "randm"]),
    ("train_colorizer.py", ["--mixed-precision", "float8"]),
    ("evaluate_features.py", ["--checkpoint", "middle"]),
    ("export_colorizer.py", ["--format", "saved_model,png"]),
    ("scaling_study.py", ["--tiny", "x", "--labelled", "y", "--pretexts", "supervised"]),
])
def test_a_typo_exits_2_before_tensorflow_loads(script, argv):
    code = (f"import runpy, sys; sys.argv = [{script!r}, *{argv!r}]\n"
            f"try:\n    runpy.run_path({script!r}, run_name='__main__')\n"
            "finally:\n    print('tensorflow loaded' if 'tensorflow' in sys.modules else 'tensorflow not loaded')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "error: argument" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout.strip().endswith("tensorflow not loaded")
