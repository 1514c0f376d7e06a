import dataclasses
import json
import os
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from cgan_colorization.engine.callbacks import SAMPLES_TAG, backup_weights, read_resume_point
from cgan_colorization.engine.config import TrainConfig
from cgan_colorization.engine.plots import plt, read_csv_log
from cgan_colorization.engine.training import train
from cgan_colorization.pretexts.gan import build as build_gan
from tests.conftest import run_script as _script
from tests.figures import series_colours

ROOT = Path(__file__).resolve().parents[1]


def _tiny(tmp_path, **overrides):
    values = dict(image_size=32, base_filters=4, batch_size=4, epochs=3, steps_per_epoch=5,
                  val_size=8, sample_count=2, backup_every=2, out=str(tmp_path / "run"))
    values.update(overrides)
    return TrainConfig(**values)


class Crash(keras.callbacks.Callback):
    """Raises after `at` training steps, as a killed process would stop."""

    def __init__(self, at):
        super().__init__()
        self.at, self.seen = at, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.at:
            raise KeyboardInterrupt("simulated kill")


class FirstWeights(keras.callbacks.Callback):
    """Records the generator's weights when fitting starts (after backups are restored)."""

    weights = None

    def on_train_begin(self, logs=None):
        if FirstWeights.weights is None:
            FirstWeights.weights = [w.numpy().copy() for w in self.model.generator.weights]


def _killed_run(tmp_path, **overrides):
    """A run killed after step 4 of its second epoch (5 steps an epoch)."""
    config = _tiny(tmp_path, **overrides)
    with pytest.raises(KeyboardInterrupt):
        train(config, extra_callbacks=[Crash(at=9)], verbose=0)
    return config, os.path.join(config.out, "backup")


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """The run folder of one `_killed_run`, trained once; each test resumes its own copy (the run
    folder may move: `out` is a resumable option)."""
    config, _ = _killed_run(tmp_path_factory.mktemp("killed"))
    return config.out


def _killed_copy(killed_run, tmp_path):
    config = _tiny(tmp_path)
    shutil.copytree(killed_run, config.out)
    return config, os.path.join(config.out, "backup")


@pytest.mark.slow
def test_run_killed_mid_epoch_resumes_at_the_right_step_with_the_saved_weights(killed_run, tmp_path):
    config, backup = _killed_copy(killed_run, tmp_path)  # killed after step 4 of epoch 2
    assert read_resume_point(backup) == (1, 4)  # the last backup (every 2 steps from the epoch's start): step 4
    saved = build_gan(config)
    saved.load_weights(backup_weights(backup))
    assert int(saved.g_optimizer.iterations) == 9

    FirstWeights.weights = None
    train(config, extra_callbacks=[FirstWeights()], verbose=0)
    for restored, expected in zip(FirstWeights.weights, saved.generator.weights):
        np.testing.assert_array_equal(restored, expected.numpy())
    log = read_csv_log(os.path.join(config.out, "log.csv"))
    assert log["epoch"] == [0.0, 1.0, 2.0]
    summary = json.load(open(os.path.join(config.out, "train_summary.json")))
    assert summary["optimizer_steps"] == 15  # 9 backed up + 1 to finish epoch 2 + 5
    assert not os.path.exists(backup)
    assert sorted(os.listdir(os.path.join(config.out, "samples"))) == [
        "epoch_001.png", "epoch_002.png", "epoch_003.png"]
    with pytest.raises(ValueError, match="already holds a finished run"):
        train(config, verbose=0)


@pytest.mark.slow
def test_same_seed_same_losses_different_seed_different(tmp_path):
    logs = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        config = _tiny(tmp_path, epochs=2, steps_per_epoch=3, seed=seed, out=str(tmp_path / name))
        train(config, verbose=0)
        logs.append(read_csv_log(os.path.join(config.out, "log.csv")))
    for key in ("g_l1", "d_loss", "val_g_l1"):
        np.testing.assert_allclose(logs[0][key], logs[1][key], rtol=1e-5)
    assert not np.allclose(logs[0]["g_l1"], logs[2]["g_l1"], rtol=1e-5)


def test_run_folder_holds_config_weights_and_plots(tmp_path):
    config = _tiny(tmp_path, epochs=1, steps_per_epoch=2)
    run = train(config, verbose=0)
    saved = json.load(open(os.path.join(run, "config.json")))
    assert saved["image_size"] == 32 and saved["l1_weight"] == 100.0
    log = read_csv_log(os.path.join(run, "log.csv"))
    assert log["epoch"] == [0.0] and json.load(open(os.path.join(run, "best.json"))) == {
        "epoch": 1, "val_g_l1": pytest.approx(log["val_g_l1"][0])}
    assert series_colours(os.path.join(run, "loss_l1.png")) == {0, 1}  # g_l1 and val_g_l1
    # The files hold the trained generator: its weights, the best epoch's (the only one) and the whole model
    # colour alike, and not as the generator did before training.
    gan = build_gan(config)
    gray = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 1)).astype(np.float32)
    colours = {"initial": gan.generator(gray, training=False).numpy()}
    for name in ("generator.weights.h5", "generator_best.weights.h5"):
        gan.generator.load_weights(os.path.join(run, name))
        colours[name] = gan.generator(gray, training=False).numpy()
    gan.discriminator.load_weights(os.path.join(run, "discriminator.weights.h5"))  # a discriminator's weights
    colours["generator.keras"] = keras.models.load_model(os.path.join(run, "generator.keras"))(gray).numpy()
    np.testing.assert_allclose(colours["generator_best.weights.h5"], colours["generator.weights.h5"], atol=1e-6)
    np.testing.assert_allclose(colours["generator.keras"], colours["generator.weights.h5"], atol=1e-5)
    assert np.abs(colours["generator.weights.h5"] - colours["initial"]).max() > 1e-3
    assert {"train", "validation", "samples"} <= set(os.listdir(os.path.join(run, "tensorboard")))
    images = tensorboard_images(os.path.join(run, "tensorboard", "samples"))
    grid = plt.imread(os.path.join(run, "samples", "epoch_001.png"))
    assert list(images) == [1] and images[1].shape == (2 * 32, 3 * 32, 3)  # sample_count 2: rows of grey | colour | original
    grey, original = images[1][:, :32].astype(int), images[1][:, 64:].astype(int)
    assert grid.shape[:2] == (440, 600)  # sample_count 2: the figure is 2 in high a row, 0.4 for the titles
    assert np.abs(grey[..., 0] - grey[..., 2]).max() <= 2  # the grey input comes first
    assert np.abs(original[..., 0] - original[..., 2]).max() > 10  # and the coloured original last


def tensorboard_images(log_dir):
    """{step: the decoded image} of the sample grids TensorBoard would show from `log_dir`."""
    from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

    events = EventAccumulator(log_dir, size_guidance={IMAGES: 0})
    events.Reload()
    tags = events.Tags()["tensors"] + events.Tags()["images"]
    assert SAMPLES_TAG in tags, tags
    return {e.step: tf.io.decode_png(e.tensor_proto.string_val[2]).numpy()
            for e in events.Tensors(SAMPLES_TAG)}


@pytest.mark.slow
def test_scripts_end_to_end(tmp_path):
    from PIL import Image

    run = tmp_path / "run"
    result = _script("train_colorizer.py", "--image-size", "32", "--base-filters", "4", "--epochs", "1",
                     "--steps-per-epoch", "3", "--batch-size", "4", "--val-size", "8", "--out", str(run))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "run folder" in result.stdout

    result = _script("evaluate_colorizer.py", "--run", str(run), "--max-images", "8")
    assert result.returncode == 0, result.stderr[-2000:]
    scores = json.load(open(run / "eval_synthetic.json"))
    assert scores["num_images"] == 8
    for name in ("model", "grey_baseline"):
        psnr = scores[name]["psnr"]
        assert psnr["min"] <= psnr["mean"] <= psnr["max"] and 5 < psnr["mean"] < 100
    assert "PSNR" in result.stdout

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (45, 70, 3), dtype=np.uint8)).save(photos / "a.JPG")
    Image.fromarray(rng.integers(0, 255, (33, 20), dtype=np.uint8)).save(photos / "grey.png")
    (photos / "junk.jpg").write_text("not an image")
    out = tmp_path / "out"
    result = _script("colorize.py", "--weights", str(run), str(photos), "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "skipped 1" in result.stdout
    colored = np.asarray(Image.open(out / "a_colorized.png"))
    assert colored.shape == (45, 70, 3)
    assert np.asarray(Image.open(out / "grey_colorized.png")).shape == (33, 20, 3)
    # The photo's own lightness is kept at full resolution.
    from skimage.color import rgb2lab

    original = np.asarray(Image.open(photos / "a.JPG").convert("RGB")) / 255.0
    assert np.abs(rgb2lab(colored / 255.0)[..., 0] - rgb2lab(original)[..., 0]).mean() < 3.0

    # A dataset the run never trained on is scored whole: all 5 colour photos, not a held-out 5 %.
    other = tmp_path / "other"
    other.mkdir()
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(other / f"p{i}.png")
    result = _script("evaluate_colorizer.py", "--run", str(run), "--dataset", f"folder:{other}")
    assert result.returncode == 0, result.stderr[-2000:]
    scores = json.load(open(next(run.glob("eval_folder*.json"))))
    assert scores["num_images"] == 5 and scores["split"] == "all"

    result = _script("evaluate_colorizer.py", "--weights", str(tmp_path / "missing.weights.h5"))
    assert result.returncode == 2 and "does not exist" in result.stderr
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "config.json").write_text(json.dumps(dataclasses.asdict(TrainConfig(image_size=64))))
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save_weights(wrong / "x.weights.h5")
    result = _script("colorize.py", "--weights", str(wrong / "x.weights.h5"), str(photos), "--out", str(out))
    assert result.returncode == 2 and "does not fit a gan colorizer" in result.stderr


def test_train_script_help_explains_presets():
    result = _script("train_colorizer.py", "--help", timeout=60)
    assert result.returncode == 0
    assert "--preset" in result.stdout and "paper" in result.stdout and "--l1-weight" in result.stdout


@pytest.mark.slow
def test_a_backup_truncated_mid_write_resumes_from_the_one_before(killed_run, tmp_path, capsys):
    config, backup = _killed_copy(killed_run, tmp_path)
    record = json.load(open(os.path.join(backup, "resume.json")))
    assert (record["epoch"], record["step"]) == (1, 4) and (record["previous"]["epoch"], record["previous"]["step"]) == (1, 2)
    latest = os.path.join(backup, record["weights"])
    with open(latest, "r+b") as f:  # the process was killed while this file was being written
        f.truncate(os.path.getsize(latest) // 2)
    assert read_resume_point(backup) == (1, 2)
    assert "cannot be read" in capsys.readouterr().out
    FirstWeights.weights = None
    train(config, extra_callbacks=[FirstWeights()], verbose=0)
    summary = json.load(open(os.path.join(config.out, "train_summary.json")))
    assert summary["optimizer_steps"] == 15  # 7 backed up + 3 to finish epoch 2 + 5: no step lost or repeated


@pytest.mark.slow
def test_a_kill_while_writing_leaves_the_last_backup_whole(killed_run, tmp_path):
    config, backup = _killed_copy(killed_run, tmp_path)
    half_written = os.path.join(backup, "backup-000099.partial.weights.h5")
    with open(half_written, "wb") as f:  # a kill before the switch: the record still names the last whole backup
        f.write(b"\x89HDF\r\n" + b"\0" * 100)
    assert read_resume_point(backup) == (1, 4)
    train(config, verbose=0)
    assert json.load(open(os.path.join(config.out, "train_summary.json")))["optimizer_steps"] == 15


@pytest.mark.slow
def test_no_readable_backup_is_one_sentence_that_says_how_to_start_over(killed_run, tmp_path):
    config, backup = _killed_copy(killed_run, tmp_path)
    for name in os.listdir(backup):
        if name.endswith(".weights.h5"):
            open(os.path.join(backup, name), "wb").close()
    with pytest.raises(ValueError, match=r"no backup in .* can be read .*: delete .* to start the run over\."):
        train(config, verbose=0)


@pytest.mark.slow
def test_backups_by_wall_time_and_at_epoch_ends(tmp_path):
    _, backup = _killed_run(tmp_path, backup_every=0, out=str(tmp_path / "epochs"))
    assert read_resume_point(backup) == (1, 0)  # no step backups: the end of epoch 1
    _, backup = _killed_run(tmp_path, backup_every=0, backup_minutes=1e-9, out=str(tmp_path / "timed"))
    assert read_resume_point(backup) == (1, 4)  # a backup after every step, the time limit being passed each time
    assert len([n for n in os.listdir(backup) if n.endswith(".weights.h5")]) == 2  # the last one and the one before


def test_steps_per_execution_auto_divides_the_epoch_and_a_value_that_does_not_is_refused(tmp_path, monkeypatch):
    from cgan_colorization.pretexts import pretext
    assert pretext.steps_per_execution(_tiny(tmp_path, steps_per_execution=0), 100) == 1  # CPU: a step per call
    assert pretext.steps_per_execution(_tiny(tmp_path, steps_per_execution=4), 100) == 4
    with pytest.raises(ValueError, match="does not divide the 5 steps"):
        pretext.steps_per_execution(_tiny(tmp_path, steps_per_execution=2), 5)
    monkeypatch.setattr(pretext.tf.config, "list_logical_devices", lambda kind=None: ["gpu"] if kind == "GPU" else [])
    assert pretext.steps_per_execution(_tiny(tmp_path, steps_per_execution=0), None) == pretext.GPU_STEPS_PER_EXECUTION
    assert pretext.steps_per_execution(_tiny(tmp_path, steps_per_execution=0), 100) == 10  # 16 does not divide 100


class StopAtStep(keras.callbacks.Callback):
    """Raises once the generator's optimizer has taken `at` steps."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.g_optimizer.iterations) >= self.at:
            raise KeyboardInterrupt("simulated kill")


@pytest.mark.slow
def test_several_steps_per_call_back_up_and_resume_step_exactly(tmp_path):
    config = _tiny(tmp_path, steps_per_execution=2, steps_per_epoch=6)
    with pytest.raises(KeyboardInterrupt):
        train(config, extra_callbacks=[StopAtStep(8)], verbose=0)  # two calls into epoch 2
    assert read_resume_point(os.path.join(config.out, "backup")) == (1, 2)  # every 2 steps, counted per step
    train(config, verbose=0)
    assert json.load(open(os.path.join(config.out, "train_summary.json")))["optimizer_steps"] == 18
