import json
import os

import numpy as np
import pytest

from data import cache
from data.color import split_rgb
from data.pipeline import cached_source, parse_dataset, pretext_dataset
from data.decode import fit_to_size
from data.stream import image_file_dataset
from tests.conftest import run_script


class Stop(Exception):
    """Raised between two shards, as a killed build would stop."""


def _photos(folder, count=10, grey=1, broken=1):
    """`count` colourful photos of assorted sizes, `grey` greyscale ones and `broken` unreadable ones."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        size = (30 + 7 * i, 48 - 2 * i)
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / f"c{i:02d}.png")
    for i in range(grey):
        Image.fromarray(np.full((40, 40), 90 + i, np.uint8)).convert("RGB").save(folder / f"g{i}.jpg")
    for i in range(broken):
        (folder / f"b{i}.jpg").write_text("not an image")
    return folder


@pytest.fixture
def source(tmp_path):
    return parse_dataset(f"folder:{_photos(tmp_path / 'photos')}", val_fraction=0.2, seed=0)


def _stop(split, index):
    raise Stop


def _build(source, path, **kwargs):
    return cache.build_cache(path, {"train": source.train_paths, "val": source.val_paths}, image_size=16,
                             source=source.spec, files_per_shard=3, log=lambda *_: None, **kwargs)


def test_the_cache_holds_the_model_inputs_of_the_colour_photos_and_says_what_it_left_out(source, tmp_path):
    built = _build(source, tmp_path / "cache")
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["source"] == source.spec and manifest["image_size"] == 16 and manifest["color_space"] == "lab"
    assert manifest["unreadable"] == 1 and manifest["greyscale"] == 1
    assert manifest["splits"]["train"]["images"] + manifest["splits"]["val"]["images"] == 10
    assert manifest["splits"]["train"]["files"] == len(source.train_paths)
    for split, paths in (("train", source.train_paths), ("val", source.val_paths)):
        shards = sorted((tmp_path / "cache").glob(f"{split}-*.json"))
        stored = [path for shard in shards for path in json.loads(shard.read_text())["paths"]]
        assert sorted(stored) == sorted(paths) and (stored != sorted(paths) or split == "val")  # shuffled order
        cached = np.stack([x.numpy().astype(np.float32) for x in cache.cache_dataset(built, split)])
        expected = np.stack([np.concatenate(split_rgb(fit_to_size(x, 16)), -1)
                             for x in image_file_dataset(stored)])
        assert cached.shape == expected.shape == (built.count(split), 16, 16, 3)
        assert np.max(np.abs(cached - expected)) <= 2.5e-4  # float16 storage of values in [-1, 1]
    assert _build(source, tmp_path / "cache").manifest == built.manifest  # complete: reused as it is


def test_a_killed_build_is_never_read_and_the_next_build_resumes_it(source, tmp_path):
    whole = _build(source, tmp_path / "whole")

    def stop_after_two(split, index):
        if (split, index) == ("train", 1):
            raise Stop

    path = tmp_path / "cache"
    with pytest.raises(Stop):
        _build(source, path, on_shard=stop_after_two)
    (path / "train-00002.f16.tmp").write_bytes(b"\0" * 100)  # a shard the kill cut mid-write
    with pytest.raises(ValueError, match="half-written") as error:
        cache.open_cache(path)
    assert str(error.value).count(". ") == 0 and str(error.value).endswith(".")
    first = (path / "train-00000.f16").stat().st_mtime_ns
    resumed = _build(source, path)
    assert resumed.manifest["resumed_shards"] == 2 and (path / "train-00000.f16").stat().st_mtime_ns == first
    assert not list(path.glob("*.tmp"))
    for split in ("train", "val"):
        for a, b in zip(resumed.shards(split), whole.shards(split), strict=True):
            assert open(a, "rb").read() == open(b, "rb").read()
    assert resumed.manifest["splits"] == whole.manifest["splits"]


def test_an_interrupted_build_with_other_options_starts_over(source, tmp_path):
    path = tmp_path / "cache"
    with pytest.raises(Stop):
        _build(source, path, on_shard=_stop)
    rebuilt = _build(source, path, drop_greyscale=False)
    assert rebuilt.manifest["resumed_shards"] == 0 and rebuilt.manifest["greyscale"] == 0


def test_mismatches_are_refused_in_one_sentence(source, tmp_path):
    _build(source, tmp_path / "cache")
    for kwargs, words in ((dict(image_size=32), "holds 16 px images and this run needs 32 px"),
                          (dict(image_size=16, resize_mode="crop"), "--resize-mode resize"),
                          (dict(image_size=16, drop_greyscale=False), "greyscale"),
                          (dict(image_size=16, color_space="yuv"), "holds lab inputs")):
        with pytest.raises(ValueError, match=words) as error:
            cached_source(source, str(tmp_path / "cache"), **kwargs)
        assert str(error.value).count(". ") == 0 and str(error.value).endswith(".")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an image cache"):
        _build(source, tmp_path / "other")
    with pytest.raises(FileNotFoundError, match="is not an image cache"):
        cache.open_cache(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="not complete"):
        cached_source(source, str(tmp_path / "nowhere"), image_size=16, build=False)


def test_training_stream_from_the_cache_is_seeded_and_resumes_exactly(source, tmp_path):
    cached = cached_source(source, str(tmp_path / "cache"), image_size=16, log=lambda *_: None)
    colour = [path for path in source.train_paths if os.path.basename(path).startswith("c")]  # not grey, not broken
    assert cached.kind == "cache" and cached.num_train == cached.cache.count("train") == len(colour) > 0

    def batches(skip=0, seed=3, count=6):
        ds = pretext_dataset(cached, "train", image_size=16, batch_size=2, seed=seed, skip_batches=skip, flip=True)
        return [np.concatenate([g.numpy(), a.numpy()], -1) for g, a in ds.take(count)]

    run, again, resumed = batches(), batches(), batches(skip=4, count=2)
    assert all(np.array_equal(a, b) for a, b in zip(run, again))
    assert all(np.array_equal(a, b) for a, b in zip(run[4:], resumed))
    assert not all(np.array_equal(a, b) for a, b in zip(run, batches(seed=4)))
    val = list(pretext_dataset(cached, "val", image_size=16, batch_size=4))
    assert sum(int(g.shape[0]) for g, _ in val) == cached.cache.count("val")
    with pytest.raises(ValueError, match="--random-crop"):
        pretext_dataset(cached, "train", image_size=16, resize_mode="resize", random_crop=True)


@pytest.mark.slow
def test_cache_command_then_train_and_evaluate_read_the_cache(tmp_path):
    photos = _photos(tmp_path / "photos", count=12)
    dataset, cache_dir, run = f"folder:{photos}", tmp_path / "cache", tmp_path / "run"
    built = run_script("cache_images.py", "--dataset", dataset, "--out", str(cache_dir), "--image-size", "32",
                       "--val-fraction", "0.25", "--files-per-shard", "4")
    assert built.returncode == 0, built.stderr[-2000:]
    manifest = json.loads((cache_dir / "manifest.json").read_text())
    assert manifest["split"] == {"val_fraction": 0.25, "seed": 0} and manifest["resumed_shards"] == 0
    written = {name: (cache_dir / name).stat().st_mtime_ns for name in os.listdir(cache_dir)}
    wrong = run_script("train_colorizer.py", "--dataset", dataset, "--cache", str(cache_dir), "--out", str(run))
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert wrong.stderr.strip().splitlines()[-1] == (
        f"error: the cache {cache_dir} holds 32 px images and this run needs 64 px: build a cache at 64 px into "
        "another folder.")
    trained = run_script("train_colorizer.py", "--dataset", dataset, "--cache", str(cache_dir), "--out", str(run),
                         "--image-size", "32", "--base-filters", "4", "--batch-size", "4", "--epochs", "1",
                         "--steps-per-epoch", "0", "--sample-count", "2")
    assert trained.returncode == 0, trained.stderr[-2000:]
    config = json.loads((run / "config.json").read_text())
    train_images = manifest["splits"]["train"]["images"]
    assert config["cache"] == str(cache_dir) and config["steps_per_epoch_resolved"] == train_images // 4
    scored = run_script("evaluate_colorizer.py", "--run", str(run), "--cache", str(cache_dir), "--split", "all",
                        "--out", str(tmp_path / "eval.json"))
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert json.loads((tmp_path / "eval.json").read_text())["num_images"] == train_images + manifest["splits"][
        "val"]["images"]
    assert {name: (cache_dir / name).stat().st_mtime_ns for name in os.listdir(cache_dir)} == written  # only read


def _open_for(source, path):
    return cached_source(source, str(path), image_size=16, build=False, log=lambda *_: None)


def test_a_truncated_shard_is_one_sentence_that_names_it(source, tmp_path):
    built = _build(source, tmp_path / "cache")
    shard = built.shards("train")[0]
    with open(shard, "r+b") as f:  # a copy that stopped, a full disk
        f.truncate(os.path.getsize(shard) - 100)
    with pytest.raises(ValueError) as error:
        _open_for(source, tmp_path / "cache")
    message = str(error.value)
    assert message.startswith(f"the cache shard {shard} holds ") and "(truncated or altered)" in message
    assert "rebuild the cache" in message and "cache_images.py" in message and "\n" not in message


def test_a_shard_with_flipped_bytes_is_caught_the_first_time_a_run_reads_it(source, tmp_path):
    built = _build(source, tmp_path / "cache")
    assert _open_for(source, tmp_path / "cache").cache.count("train") == built.count("train")  # checked at build
    shard = built.shards("val")[0]
    with open(shard, "r+b") as f:
        f.seek(40)
        byte = f.read(1)
        f.seek(40)
        f.write(bytes([byte[0] ^ 0xFF]))  # same size, one byte altered
    with pytest.raises(ValueError, match=rf"the cache shard {shard} does not match the checksum .*rebuild"):
        _open_for(source, tmp_path / "cache")
    verify = run_script("cache_images.py", "--cache", str(tmp_path / "cache"), "--verify")
    assert verify.returncode == 2 and "does not match the checksum" in verify.stderr
    assert "Traceback" not in verify.stderr


def test_verify_reads_every_shard_and_a_run_checks_each_once(source, tmp_path, monkeypatch):
    built = _build(source, tmp_path / "cache")
    assert len(cache.verify_cache(built)) == len(built.shards("all"))
    reads = []
    monkeypatch.setattr(cache, "_sha256", lambda path: reads.append(path) or cache.hashlib.sha256(
        open(path, "rb").read()).hexdigest())
    _open_for(source, tmp_path / "cache")
    assert reads == []  # the build checked them all and recorded it
    os.remove(tmp_path / "cache" / cache.VERIFIED)
    _open_for(source, tmp_path / "cache")
    _open_for(source, tmp_path / "cache")
    assert sorted(reads) == sorted(built.shards("all"))  # each shard once, by the first run that read it


def test_each_worker_reads_its_own_cache_blocks(source, tmp_path):
    built = _build(source, tmp_path / "cache")
    blocks = len(cache._blocks(built, "train"))
    assert blocks >= 2
    records = lambda **kw: {x.numpy().astype(np.float32).tobytes() for x in cache.cache_dataset(built, "train", **kw)}
    every = records()
    parts = [records(shard=(i, 2)) for i in (0, 1)]
    assert parts[0] | parts[1] == every and not parts[0] & parts[1] and parts[0] and parts[1]
    with pytest.raises(ValueError, match=f"holds {blocks} train blocks .* fewer than the {blocks + 1} workers"):
        cache.cache_dataset(built, "train", shard=(0, blocks + 1))
