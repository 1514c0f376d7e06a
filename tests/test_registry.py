"""One registry for every pretext and backbone; flags checked where they are parsed."""

import configparser
import dataclasses
import importlib

import pytest

from cgan_colorization.engine.config import RANGES, TrainConfig, check_config, pretext_of
from cgan_colorization.pretexts import registry
from tests.conftest import ROOT, run_script


def test_every_pretext_module_defines_build_and_load():
    for entry in registry.PRETEXTS.values():
        module = entry.implementation()
        assert callable(module.build) and callable(module.load), entry.name
        assert entry.backbone in registry.BACKBONES
        values = {name: option.default for name, option in registry.options().items()}
        assert registry.pretext(entry.objective, entry.backbone, {**values, **entry.overrides}) is entry
        if not entry.overrides:
            assert registry.pretext(entry.objective, entry.backbone) is entry


def test_variants_are_named_by_their_settings():
    values = {name: option.default for name, option in registry.options().items()}
    assert registry.pretext("gan", "unet", dict(values, skip_dropout=0.5)).name == "gan-skipdrop"
    assert registry.pretext("gan", "unet", dict(values, no_skips=True)).name == "gan-noskip"
    odd = registry.pretext("gan", "unet", dict(values, skip_dropout=0.3, l1_weight=10.0))
    assert odd.name == "gan[l1_weight=10.0,skip_dropout=0.3]" and odd.floor == "random"


def test_a_pretext_label_is_read_once_into_a_reference_whose_run_resolves_back_to_its_entry():
    refs = registry.parse_pretexts("gan-skipdrop,gan-skipdrop@best,gan-skipdrop@last,l1")
    assert [ref.label for ref in refs] == ["gan-skipdrop", "gan-skipdrop@best", "l1"]  # no repeats
    skip = refs[0]
    assert (skip.name, skip.backbone, skip.options, skip.checkpoint) == ("gan-skipdrop", "unet", {"skip_dropout": 0.5},
                                                                         "last")
    assert skip.train_values() == {"skip_dropout": 0.5, "objective": "gan", "backbone": "unet"}
    assert registry.PretextRef.named("l1", seed=2).train_values() == {"objective": "l1", "backbone": "unet", "seed": 2}
    named = registry.parse_pretexts("l1,gan@last", checkpoint="best")  # the checkpoint of a label without one
    assert [ref.label for ref in named] == ["l1@best", "gan"]
    for name in registry.PRETEXTS:  # name -> the fields of a run -> the same entry
        ref = registry.PretextRef.named(name)
        assert pretext_of(dataclasses.replace(TrainConfig(), **ref.train_values())) is ref.entry, name


@pytest.mark.parametrize("text, kwargs", [
    ("jigsaw", {}), ("gan@middle", {}), (",", {}), ("gan,supervised", dict(colorizing=True)),
    ("gan@best", dict(checkpoints=())),
])
def test_a_bad_pretext_label_is_one_sentence(text, kwargs):
    with pytest.raises(ValueError, match=r"^takes names from \("):
        registry.parse_pretexts(text, **kwargs)


def test_the_paper_pretext_is_registered():
    assert registry.PRETEXTS[registry.PAPER_PRETEXT].floor == "random"
    with pytest.raises(ValueError, match="the pretexts are"):
        registry.PretextRef.named("jigsaw")


def test_every_option_is_a_config_field_with_its_registry_default_and_range():
    config = TrainConfig()
    for name, option in registry.options().items():
        assert getattr(config, name) == option.default, name
        assert registry.owners(name), name
    assert RANGES["temperature"].contains(0.38) and not RANGES["temperature"].contains(0.0)
    assert not RANGES["l1_weight"].contains(-1.0) and RANGES["prior_batches"].contains(1)


@pytest.mark.parametrize("objective, backbone, match", [
    ("gan", "mobilenetv2", "offered with --objective multitask"),
    ("nope", "unet", "--objective must be one of"),
    ("gan", "resnet", "--backbone must be one of"),
])
def test_unknown_combinations_are_one_sentence_errors(objective, backbone, match):
    with pytest.raises(ValueError, match=match):
        registry.pretext(objective, backbone)


def test_check_config_refuses_what_a_backbone_cannot_take():
    with pytest.raises(ValueError, match="power of two"):
        check_config(dataclasses.replace(TrainConfig(), image_size=48))
    with pytest.raises(ValueError, match="multiple of 32"):
        check_config(dataclasses.replace(TrainConfig(), objective="multitask", backbone="mobilenetv2",
                                         image_size=48))
    with pytest.raises(ValueError, match="--lr must be > 0"):
        check_config(dataclasses.replace(TrainConfig(), lr=-1.0))
    assert check_config(TrainConfig()).name == "gan"


def test_console_entry_points_name_real_functions():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    scripts = setup["options.entry_points"]["console_scripts"].strip().splitlines()
    targets = dict(map(str.strip, line.split("=")) for line in scripts)
    assert {"cgan-train", "cgan-evaluate", "cgan-colorize", "cgan-finetune-classifier", "cgan-finetune-segmenter",
            "cgan-reproduce", "cgan-evaluate-features", "cgan-cache", "cgan-diagnose-batchnorm"} <= set(targets)
    for target in targets.values():
        module, _, name = target.strip().partition(":")
        assert callable(getattr(importlib.import_module(module), name)), target


@pytest.mark.parametrize("args, flag, message", [
    (["train_colorizer.py", "--batch-size", "0"], "--batch-size", "must be >= 1, received 0"),
    (["train_colorizer.py", "--lr", "-1"], "--lr", "must be > 0, received -1"),
    (["train_colorizer.py", "--val-fraction", "1.5"], "--val-fraction", "must be > 0 and < 1"),
    (["train_colorizer.py", "--temperature", "0"], "--temperature", "must be > 0"),
    (["finetune_classifier.py", "--batch-size", "0"], "--batch-size", "must be >= 1"),
    (["finetune_segmenter.py", "--unfrozen-lr", "-0.5"], "--unfrozen-lr", "must be > 0"),
    (["evaluate_colorizer.py", "--run", "x", "--max-images", "0"], "--max-images", "must be >= 1"),
    (["colorize.py", "a.png", "--weights", "x", "--image-size", "2"], "--image-size", "must be >= 4"),
    (["reproduce.py", "--seeds", "0"], "--seeds", "must be >= 1"),
    (["reproduce.py", "--downstream-scale", "-1"], "--downstream-scale", "must be > 0"),
    (["benchmarks/benchmark.py", "--steps", "0"], "--steps", "must be >= 1"),
    (["benchmarks/benchmark.py", "--sizes", "48"], "--sizes", "power of two"),
])
def test_out_of_range_flags_stop_with_one_sentence(args, flag, message):
    result = run_script(*args, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert f"argument {flag}" in error and message in error, error


@pytest.mark.slow
@pytest.mark.parametrize("args", [["--steps-per-epoch", "0"], ["--preset", "paper", "--dataset", "synthetic"]])
def test_an_epoch_of_an_endless_stream_is_a_clear_error(tmp_path, args):
    result = run_script("train_colorizer.py", *args, "--out", str(tmp_path / "run"), timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "endless stream" in result.stderr and "--steps-per-epoch N" in result.stderr


def test_a_run_folder_ignores_the_options_of_another_backbone(tmp_path):
    import json

    from cgan_colorization.engine.config import load_config

    values = dataclasses.asdict(TrainConfig())
    foreign = {name: (not option.default if isinstance(option.default, bool) else "x" if isinstance(option.default, str)
                      else option.default + 1)
               for name, option in registry.BACKBONES["mobilenetv2"].options.items()}
    (tmp_path / "config.json").write_text(json.dumps(dict(values, **foreign)))
    assert check_config(load_config(tmp_path)).name == "gan"
