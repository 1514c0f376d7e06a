"""Which generator an experiment loads (`--checkpoint last|best`, recorded in every result), and runs
that never overwrite each other or stand in for what was asked."""

import dataclasses
import hashlib
import json
import os

import pytest

from cgan_colorization.apps.inference import checkpoint_info, load_colorizer, resolve_weights
from cgan_colorization.engine.callbacks import trained_seconds
from cgan_colorization.engine.config import TrainConfig
from cgan_colorization.engine.plots import read_csv_log
from cgan_colorization.engine.training import train
from tests.conftest import run_script
from tests.test_training import Crash
from transfer.config import FinetuneConfig, default_run_name
from transfer.experiment import run_finetune

TINY = dict(train_size=16, val_size=8, test_size=8, batch_size=8, dense_units=16, frozen_epochs=1,
            unfrozen_epochs=1, baseline_epochs=1)


def _config(out, **overrides):
    values = dict(image_size=32, base_filters=4, batch_size=4, epochs=3, steps_per_epoch=3, val_size=8,
                  sample_count=2, backup_every=2, out=str(out))
    values.update(overrides)
    return TrainConfig(**values)


def _sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def colorizer(tmp_path_factory):
    out = tmp_path_factory.mktemp("checkpoints") / "gan"
    train(_config(out), verbose=0)
    return out


def test_a_run_records_the_epoch_of_its_last_and_of_its_best_generator(colorizer):
    val = read_csv_log(os.path.join(colorizer, "log.csv"))["val_g_l1"]
    best_epoch = min(range(len(val)), key=val.__getitem__) + 1
    last = checkpoint_info(resolve_weights(str(colorizer)))
    best = checkpoint_info(resolve_weights(str(colorizer), "best"))
    assert last["file"].endswith("generator.weights.h5") and last["checkpoint"] == "last" and last["epoch"] == 3
    assert best["file"].endswith("generator_best.weights.h5") and best["checkpoint"] == "best"
    assert best["epoch"] == best_epoch and best["val_g_l1"] == pytest.approx(min(val))
    assert last["sha256"] == _sha256(last["file"]) and best["sha256"] == _sha256(best["file"])
    loaded = load_colorizer(str(colorizer), checkpoint="best")
    assert loaded.checkpoint == best


def test_a_missing_best_checkpoint_is_one_sentence_not_the_last_one(colorizer, tmp_path):
    folder = tmp_path / "no-best"
    folder.mkdir()
    for name in ("config.json", "generator.weights.h5", "log.csv"):
        (folder / name).write_bytes((colorizer / name).read_bytes())
    assert resolve_weights(str(folder)).endswith("generator.weights.h5")
    with pytest.raises(FileNotFoundError, match="holds no generator_best.weights.h5.*--checkpoint last"):
        resolve_weights(str(folder), "best")
    assert checkpoint_info(str(folder / "generator.weights.h5"))["epoch"] == 3  # from log.csv, no last.json
    result = run_script("evaluate_colorizer.py", "--run", str(folder), "--checkpoint", "best", timeout=120)
    assert result.returncode == 2 and "generator_best.weights.h5" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_resuming_with_other_options_is_refused_and_a_resumed_run_keeps_its_earlier_best(tmp_path):
    config = _config(tmp_path / "run", epochs=3)
    with pytest.raises(KeyboardInterrupt):
        train(config, extra_callbacks=[Crash(at=8)], verbose=0)  # killed at step 2 of epoch 3
    saved = open(tmp_path / "run" / "config.json").read()
    before = trained_seconds(str(tmp_path / "run" / "backup"))  # the killed session's time, up to its last backup
    assert before > 0
    with pytest.raises(ValueError, match=r"other options: --lr 0\.001 \(the run has 0\.0002\), --flip True"):
        train(dataclasses.replace(config, lr=1e-3, flip=True), verbose=0)
    assert open(tmp_path / "run" / "config.json").read() == saved  # refused before anything was written
    # Plant a best that no later epoch can beat: the resumed run must keep it, not restart from infinity.
    (tmp_path / "run" / "best.json").write_text(json.dumps({"epoch": 1, "val_g_l1": -1.0}))
    train(dataclasses.replace(config, backup_every=3), verbose=0)  # how often it backs up may change
    assert json.loads((tmp_path / "run" / "best.json").read_text()) == {"epoch": 1, "val_g_l1": -1.0}
    assert json.loads((tmp_path / "run" / "last.json").read_text())["epoch"] == 3
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["seconds"] == pytest.approx(before + summary["seconds_last_session"], abs=0.15)  # both sessions


@pytest.mark.slow
def test_downstream_metrics_record_the_last_generator_by_default_and_the_best_when_asked(colorizer, tmp_path):
    base = FinetuneConfig(task="classification", init="colorization", colorizer=str(colorizer), out=str(tmp_path),
                          **TINY)
    last = run_finetune(base, verbose=0, log=lambda *_: None)
    best = run_finetune(dataclasses.replace(base, checkpoint="best"), verbose=0, log=lambda *_: None)
    assert last["colorizer"]["file"] == str(colorizer / "generator.weights.h5")
    assert last["colorizer"]["checkpoint"] == "last" and last["colorizer"]["epoch"] == 3
    assert best["colorizer"]["file"] == str(colorizer / "generator_best.weights.h5")
    assert best["colorizer"]["epoch"] == json.loads((colorizer / "best.json").read_text())["epoch"]
    assert best["colorizer"]["sha256"] == _sha256(colorizer / "generator_best.weights.h5")
    on_disk = {name: json.loads((tmp_path / name / "metrics.json").read_text())["colorizer"]["checkpoint"]
               for name in ("colorization-seed0", "colorization-best-seed0")}
    assert on_disk == {"colorization-seed0": "last", "colorization-best-seed0": "best"}


@pytest.mark.slow
def test_two_seeds_of_one_command_leave_two_run_folders(tmp_path):
    for seed in (0, 1):
        run_finetune(FinetuneConfig(task="classification", init="random", colorizer=str(tmp_path / "none"),
                                    image_size=32, base_filters=4, seed=seed, out=str(tmp_path), **TINY),
                     verbose=0, log=lambda *_: None)
    seeds = {name: json.loads((tmp_path / name / "metrics.json").read_text())["seed"]
             for name in ("random-seed0", "random-seed1")}
    assert seeds == {"random-seed0": 0, "random-seed1": 1}
    names = {default_run_name(FinetuneConfig(init=init, checkpoint=c, label_fraction=f, seed=s))
             for init in ("colorization", "random") for c in ("last", "best") for f in (0.1, 1.0) for s in (0, 1)}
    assert len(names) == 12  # every setting but a random init's (unused) checkpoint has its own folder


@pytest.mark.slow
def test_a_missing_colorizer_path_is_refused_before_anything_trains(tmp_path):
    typo = tmp_path / "TYPO"
    result = run_script("finetune_classifier.py", "--init", "colorization", "--colorizer", str(typo),
                        "--out", str(tmp_path / "out"), timeout=300)
    assert result.returncode == 2 and f"the colorizer {typo} does not exist" in result.stderr
    assert f"`python train_colorizer.py --out {typo}`" in result.stderr and "Traceback" not in result.stderr
    assert not typo.exists() and not (tmp_path / "out").exists()
