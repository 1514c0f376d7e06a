import re

import numpy as np
import pytest
import tensorflow as tf

from data import pipeline
from data.pipeline import parse_dataset, pretext_dataset, to_lab_pair
from data.decode import fit_to_size
from tests.conftest import realdata


def _photos(folder, count, size=(40, 56)):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / f"p{i}.png")


def test_real_coco_images_stream_as_normalized_pairs_with_the_greyscale_one_dropped():
    coco = realdata("coco2014-mini", "train2014")
    source = parse_dataset(f"coco:{coco}", val_fraction=0.1)
    assert len(source.train_paths) + len(source.val_paths) == 100
    batches = list(pretext_dataset(source, "train", image_size=32, batch_size=8).take(3))
    for gray, ab in batches:
        assert gray.shape == (8, 32, 32, 1) and ab.shape == (8, 32, 32, 2)
        assert -1 <= float(tf.reduce_min(gray)) and float(tf.reduce_max(gray)) <= 1
        assert float(tf.reduce_max(tf.abs(ab))) <= 1
    val = list(pretext_dataset(source, "val", image_size=32, batch_size=4))
    assert sum(int(g.shape[0]) for g, _ in val) <= 10
    counts = source.stats.as_dict()
    assert counts["skipped"] == 0 and counts["seen"] >= 24


def test_several_folders_join_and_a_missing_one_is_named(tmp_path):
    _photos(tmp_path / "a", 3)
    _photos(tmp_path / "b" / "deep", 4)
    source = parse_dataset(f"folder:{tmp_path / 'a'},{tmp_path / 'b'}", val_fraction=0.25)
    assert len(source.train_paths) + len(source.val_paths) == 7
    with pytest.raises(FileNotFoundError, match="nowhere"):
        parse_dataset(f"folder:{tmp_path / 'nowhere'}")
    with pytest.raises(ValueError, match="received 'photos'"):
        parse_dataset("photos")


def test_every_documented_prefix_has_one_parser_and_an_unknown_one_the_same_error():
    documented = {spec.partition(":")[0] + spec.partition(":")[1]
                  for spec in re.findall(r"^  (\S+)", pipeline.__doc__, re.MULTILINE)}
    assert documented == {"synthetic", "coco", "coco:", "folder:", "pets", "tinyimagenet:"}
    assert set(pipeline.SOURCES) == documented
    for spec in ("photos", "coco:", "folder:", "folder", "synthetic:x"):
        with pytest.raises(ValueError) as error:
            parse_dataset(spec)
        assert str(error.value) == (f"--dataset must be 'synthetic', 'coco', 'coco:PATH', "
                                    f"'folder:PATH', 'pets' or 'tinyimagenet:PATH', received {spec!r}.")


def test_resuming_skips_exactly_the_batches_already_trained_on(tmp_path):
    for spec in ("synthetic", f"folder:{tmp_path}"):
        if spec != "synthetic":
            _photos(tmp_path, 12)
        source = parse_dataset(spec, val_fraction=0.2)
        full = [g.numpy() for g, _ in pretext_dataset(source, "train", image_size=32, batch_size=2).take(5)]
        resumed = [g.numpy() for g, _ in
                   pretext_dataset(source, "train", image_size=32, batch_size=2, skip_batches=3).take(2)]
        np.testing.assert_array_equal(np.stack(resumed), np.stack(full[3:]))


def test_fit_to_size_squashes_crops_and_upscales_tiny_images():
    rgb = tf.random.uniform((30, 60, 3), seed=1)
    assert fit_to_size(rgb, 32).shape == (32, 32, 3)
    crop = fit_to_size(rgb, 32, mode="crop")
    assert crop.shape == (32, 32, 3)
    tiny = fit_to_size(tf.random.uniform((3, 5, 3)), 64, mode="crop", random_crop=True, flip=True,
                       seed=tf.constant([1, 2], tf.int64))
    assert tiny.shape == (64, 64, 3) and float(tf.reduce_max(tiny)) <= 1.0
    with pytest.raises(ValueError, match="mode"):
        fit_to_size(rgb, 32, mode="stretch")


def test_lab_pair_inside_tf_data_equals_eager():
    rgb = tf.random.uniform((4, 8, 8, 3), seed=2)
    eager = to_lab_pair(rgb)
    mapped = next(iter(tf.data.Dataset.from_tensors(rgb).map(to_lab_pair)))
    for a, b in zip(eager, mapped):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_each_worker_renders_only_its_slot_of_the_global_batches_one_process_would_form():
    source = parse_dataset("synthetic")
    one = [g.numpy() for g, _ in pretext_dataset(source, "train", image_size=32, batch_size=8, skip_batches=3).take(2)]
    halves = [[g.numpy() for g, _ in pretext_dataset(source, "train", image_size=32, batch_size=4, skip_batches=3,
                                                     shard=pipeline.WorkerShard(i, 2, 8)).take(2)] for i in (0, 1)]
    for step in range(2):
        np.testing.assert_array_equal(np.concatenate([halves[0][step], halves[1][step]]), one[step])


def test_each_worker_decodes_only_its_own_photo_files(tmp_path):
    from PIL import Image

    tmp_path.mkdir(exist_ok=True)
    for i in range(8):  # one flat colour per file, so an image names its file
        Image.fromarray(np.full((24, 24, 3), (30 * i + 20, 200 - 25 * i, 60), np.uint8)).save(tmp_path / f"p{i}.png")
    source = parse_dataset(f"folder:{tmp_path}", val_fraction=0.125)
    assert len(source.train_paths) == 7
    seen = []
    for index in (0, 1):
        shard = pipeline.WorkerShard(index, 2, 4)
        batches = pretext_dataset(source, "train", image_size=8, batch_size=2, shard=shard).take(4)
        seen.append({tuple(np.round(ab.numpy()[k].mean(axis=(0, 1)), 3)) for _, ab in batches for k in range(2)})
    assert len(seen[0]) == 4 and len(seen[1]) == 3 and not seen[0] & seen[1]  # 4 + 3 files, no photo shared
    with pytest.raises(ValueError, match="7 training photos cannot be shared among 8 workers"):
        pretext_dataset(source, "train", batch_size=1, shard=pipeline.WorkerShard(7, 8, 8))
    with pytest.raises(ValueError, match="only the training stream"):
        pretext_dataset(source, "val", batch_size=1, shard=pipeline.WorkerShard(0, 2, 2))
