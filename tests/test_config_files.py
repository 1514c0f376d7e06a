"""One schema for every command line: `--config FILE` on every script (field defaults < preset < file <
flags), a run folder's config.json re-runs its run, presets and studies are the files in configs/, and a
wrong key or value is refused in one sentence with exit status 2."""

import dataclasses
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from cgan_colorization.apps import cli
from cgan_colorization.engine import schema
from cgan_colorization.engine.config import TrainConfig, save_config
from tests.conftest import ROOT, run_script
from tests.test_cli_vocabulary import PARSERS
from transfer import cli as transfer_cli, options
from transfer.config import FinetuneConfig

SECTIONS = {"colorizer": TrainConfig, "classification": FinetuneConfig, "segmentation": FinetuneConfig,
            "reproduce": options.ReproduceOptions, "scaling": options.ScalingOptions}
TOY = ["--image-size", "32", "--base-filters", "4", "--epochs", "1", "--steps-per-epoch", "3", "--batch-size", "4"]


def _write(path, values):
    path.write_text(json.dumps(values))
    return str(path)


def _refusal(parser, argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        parser.parse(argv)
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and error.count("\n") == 1 and "Traceback" not in error, error
    return error


def test_every_preset_section_sets_only_options_of_its_script_and_paper_differs_from_fast():
    for name in schema.PRESET_NAMES:
        for section in json.loads((ROOT / "configs" / f"{name}.json").read_text()):
            assert section == schema.ABOUT or section in SECTIONS, (name, section)
    for section, cls in SECTIONS.items():
        fields = {f.name for f in dataclasses.fields(cls)}
        for name in schema.PRESET_NAMES:
            assert set(schema.preset(name, section)) <= fields, (name, section)
    assert schema.presets_of("scaling") == ("fast",)  # the study always runs at the fast preset
    assert schema.preset("paper", "colorizer")["image_size"] == 256 and schema.preset("fast", "colorizer") == {}


def test_values_resolve_defaults_then_preset_then_file_then_flags(tmp_path):
    parser = cli.train_parser()
    assert parser.parse([]) == TrainConfig()
    paper = parser.parse(["--preset", "paper"])
    assert (paper.image_size, paper.epochs, paper.steps_per_epoch) == (256, 20, None)
    path = _write(tmp_path / "c.json", {"preset": "paper", "epochs": 3, "objective": "l1"})
    from_file = parser.parse(["--config", path])
    assert (from_file.image_size, from_file.epochs, from_file.objective) == (256, 3, "l1")
    flagged = parser.parse(["--config", path, "--epochs", "5", "--preset", "fast"])
    assert (flagged.image_size, flagged.epochs, flagged.objective) == (64, 5, "l1")


def test_a_run_folders_config_json_parses_back_to_its_config_with_its_recorded_facts(tmp_path):
    config = dataclasses.replace(TrainConfig(), epochs=2, steps_per_epoch=None, keep_steps="3", out=str(tmp_path))
    save_config(config, tmp_path, steps_per_epoch_resolved=40, precision="float32", replicas=1,
                cache_manifest={"shards": []})
    assert cli.train_parser().parse(["--config", str(tmp_path / "config.json")]) == config
    assert cli.train_parser().parse(["--config", str(tmp_path)]) == config  # the run folder itself
    with pytest.raises(ValueError, match="RECORDED lacks"):
        save_config(config, tmp_path, stray=1)
    tuned = FinetuneConfig(task="segmentation", init="random", lr=1e-3, train_size=16, out=str(tmp_path))
    save_config(tuned, tmp_path / "seg", image_size_resolved=32, base_filters_resolved=4, backbone_resolved="unet")
    assert transfer_cli.finetune_parser("segmentation").parse(["--config", str(tmp_path / "seg")]) == tuned


@pytest.mark.parametrize("values, words", [
    ({"epoch": 3}, 'unknown key "epoch" in {path}: did you mean "epochs"?'),
    ({"bach_size": 8}, 'unknown key "bach_size" in {path}: did you mean "batch_size"?'),
    ({"epochs": "ten"}, '"epochs" in {path} must be an integer >= 1, received "ten".'),
    ({"epochs": 0}, '"epochs" in {path} must be an integer >= 1, received 0.'),
    ({"strategy": "all"}, '"strategy" in {path} must be one of auto, one, mirrored, multiworker, tpu'),
    ({"flip": "yes"}, '"flip" in {path} must be true or false'),
    ({"preset": "slow"}, '"preset" in {path} must be one of fast, paper'),
])
def test_a_wrong_key_or_value_is_one_sentence_naming_it(tmp_path, capsys, values, words):
    path = _write(tmp_path / "c.json", values)
    error = _refusal(cli.train_parser(), ["--config", path], capsys)
    assert words.format(path=path) in error, error


def test_a_config_of_the_other_task_or_a_missing_file_is_refused(tmp_path, capsys):
    path = _write(tmp_path / "c.json", {"task": "segmentation"})
    error = _refusal(transfer_cli.finetune_parser("classification"), ["--config", path], capsys)
    assert "is for task 'segmentation', not 'classification'" in error
    error = _refusal(cli.train_parser(), ["--config", str(tmp_path / "none.json")], capsys)
    assert "none.json does not exist" in error
    error = _refusal(cli.colorize_parser(), ["--config", _write(tmp_path / "d.json", {"out": "x"})], capsys)
    assert "required: inputs" in error


def test_the_refusal_from_the_script_itself_has_no_traceback_and_loads_no_tensorflow(tmp_path):
    path = _write(tmp_path / "c.json", {"epoch": 3})
    code = ("import runpy, sys; sys.argv = ['train_colorizer.py', '--config', sys.argv[1]]\n"
            "try:\n    runpy.run_path('train_colorizer.py', run_name='__main__')\n"
            "finally:\n    print('tensorflow loaded' if 'tensorflow' in sys.modules else 'tensorflow not loaded')\n")
    result = subprocess.run([sys.executable, "-c", code, path], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout.strip() == "tensorflow not loaded"
    assert result.stderr == f'train_colorizer.py: error: unknown key "epoch" in {path}: did you mean "epochs"?\n'


@pytest.mark.parametrize("script", sorted(PARSERS))
def test_every_script_takes_a_config_file(script, tmp_path):
    parser = PARSERS[script]()
    fields = {f.name: f for f in dataclasses.fields(parser.schema.cls) if f.name not in parser.schema.fixed}
    required = {name: "x" for name, f in fields.items() if f.metadata["required"] and not f.metadata["positional"]}
    positional = ["photo.jpg"] if "inputs" in fields else []
    name = next(n for n, f in fields.items() if f.type is str and n not in required and not f.metadata["choices"]
                       and not f.metadata["parse"])
    resolved = parser.parse(["--config", _write(tmp_path / "c.json", {**required, name: "from-file"}), *positional])
    assert getattr(resolved, name) == "from-file", script


@pytest.mark.slow
def test_a_run_re_run_from_its_config_json_ends_at_the_same_weights(tmp_path):
    """Two identical toy runs end at bit-identical weights on a CPU (checked before writing this test), so
    the re-run must too."""
    first, second = tmp_path / "first", tmp_path / "second"
    result = run_script("train_colorizer.py", *TOY, "--seed", "3", "--out", str(first))
    assert result.returncode == 0, result.stderr[-2000:]
    result = run_script("train_colorizer.py", "--config", str(first / "config.json"), "--out", str(second))
    assert result.returncode == 0, result.stderr[-2000:]
    summaries = [json.loads((run / "train_summary.json").read_text()) for run in (first, second)]
    assert summaries[0]["weights_sha256"] == summaries[1]["weights_sha256"]
    configs = [json.loads((run / "config.json").read_text()) for run in (first, second)]
    assert {k: v for k, v in configs[0].items() if k != "out"} == {k: v for k, v in configs[1].items() if k != "out"}


def test_an_installed_package_reads_the_presets_from_its_prefix(tmp_path, monkeypatch):
    installed = tmp_path / "share" / "cgan-colorization" / "configs"
    installed.mkdir(parents=True)
    (installed / "fast.json").write_text(json.dumps({"colorizer": {"base_filters": 48}}))
    monkeypatch.setattr(schema, "CONFIG_FOLDERS", (str(tmp_path / "no-checkout" / "configs"), str(installed)))
    schema._preset_file.cache_clear()
    try:
        assert schema.preset("fast", "colorizer") == {"base_filters": 48}
        with pytest.raises(FileNotFoundError, match="no-checkout.*paper.json does not exist"):
            schema.preset("paper", "colorizer")
    finally:
        schema._preset_file.cache_clear()


@pytest.mark.slow
def test_the_wheel_holds_every_subpackage_the_shipped_colorizer_and_the_config_files(tmp_path):
    if not all(importlib.util.find_spec(name) for name in ("setuptools", "wheel")):
        pytest.skip("building a wheel offline needs setuptools and wheel in this environment")
    source = tmp_path / "source"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("cgan_colorization", "transfer", "data", "benchmarks", "configs"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "wheel"), str(source)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    names = zipfile.ZipFile(next((tmp_path / "wheel").glob("*.whl"))).namelist()
    for package in ("networks", "pretexts", "engine", "apps"):
        assert f"cgan_colorization/{package}/__init__.py" in names
    assert "cgan_colorization/pretrained/tiny64-gan/generator.weights.h5" in names
    shipped = {name.rpartition("/")[2] for name in names if "/data/share/cgan-colorization/configs/" in name}
    assert shipped == {path.name for path in (ROOT / "configs").glob("*.json")}


@pytest.mark.parametrize("flags", [[], ["--seeds", "2", "--pretexts", "gan,l1@best", "--tasks", "segmentation",
                                        "--labelled", "synthetic", "--probes", "--label-fractions", "0.5,1",
                                        "--pretext-seeds", "2"]])
def test_a_study_is_the_same_study_again_from_its_out_config_json(tmp_path, flags):
    from transfer import reproduce

    study = reproduce.resolve(options.reproduce_parser().parse(["--out", str(tmp_path / "study"), *flags]))
    recorded = tmp_path / "config.json"
    recorded.write_text(json.dumps(study.record()))  # what reproduce.main writes to OUT/config.json
    again = reproduce.resolve(options.reproduce_parser().parse(["--config", str(recorded)]))
    assert again == study
    assert again.seeds == (2 if flags else 3) and [ref.run_label for ref in again.pretexts] == \
        (["gan-pseed0", "gan-pseed1", "l1@best-pseed0", "l1@best-pseed1"] if flags else ["gan"])
    folders = [os.path.basename(reproduce.colorizer_folder(again, ref)) for ref in again.pretexts]
    assert folders == (["colorizer-pseed0", "colorizer-pseed1", "colorizer-l1-pseed0", "colorizer-l1-pseed1"]
                       if flags else ["colorizer"])
    assert [ref.train_values().get("seed") for ref in again.pretexts] == ([0, 1, 0, 1] if flags else [None])


def test_pretext_seeds_with_a_reused_colorizer_are_refused(tmp_path):
    from transfer import reproduce

    args = options.reproduce_parser().parse(["--colorizer", str(tmp_path), "--pretext-seeds", "2"])
    with pytest.raises(ValueError, match="leave --pretext-seeds at 1"):
        reproduce.resolve(args)
