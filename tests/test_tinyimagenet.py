"""Tests of the Tiny ImageNet source (`tinyimagenet:PATH`): its layout read as pretext photos with
nested per-class subsets, and as a single-label classification set with fixed, class-balanced splits."""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from data import labelled, tinyimagenet
from data.labelled.splits import SPLITS
from data.pipeline import parse_dataset, pretext_dataset
from tests.conftest import realdata

WNIDS = ("n0003", "n0001", "n0002")  # not sorted: the class order is wnids.txt's
PER_CLASS = 14  # indices 0..13: "10" sorts before "2" as a string
GREY_TRAIN = ("n0001", 3)  # a 1-channel JPEG
VAL = {0: "n0002", 11: "n0003", 2: "n0001", 9: "n0003", 10: "n0001", 1: "n0002"}  # k -> wnid
GREY_VAL = 10  # an RGB JPEG whose three channels are equal


def _jpeg(path, rng, grey=None):
    pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    if grey == "L":
        Image.fromarray(pixels[..., 0], mode="L").save(path, quality=95)
    elif grey == "RGB":
        Image.fromarray(np.repeat(pixels[..., :1], 3, axis=-1)).save(path, quality=95)
    else:
        Image.fromarray(pixels).save(path, quality=95)


def make_tiny_imagenet(base):
    root = base / "tiny-imagenet-200"
    root.mkdir()
    (root / "wnids.txt").write_text("\n".join(WNIDS))  # no newline after the last id
    (root / "words.txt").write_text("n0009\tunused\nn0003\tcat, house cat\nn0001\tdog\n")  # n0002: no name
    rng = np.random.default_rng(0)
    for wnid in WNIDS:
        folder = root / "train" / wnid / "images"
        folder.mkdir(parents=True)
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        for i in range(PER_CLASS):
            _jpeg(folder / f"{wnid}_{i}.JPEG", rng, "L" if (wnid, i) == GREY_TRAIN else None)
    (root / "val" / "images").mkdir(parents=True)
    lines = []
    for k, wnid in VAL.items():
        _jpeg(root / "val" / "images" / f"val_{k}.JPEG", rng, "RGB" if k == GREY_VAL else None)
        lines.append(f"val_{k}.JPEG\t{wnid}\t0\t1\t15\t14")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return make_tiny_imagenet(tmp_path_factory.mktemp("tiny"))


def _index(path):
    """(wnid, i) of train/<wnid>/images/<wnid>_<i>.JPEG."""
    wnid, _, i = os.path.splitext(os.path.basename(path))[0].rpartition("_")
    return wnid, int(i)


def _count(ds):
    return sum(int(gray.shape[0]) for gray, _ in ds)


def _mode(path):
    with Image.open(path) as image:
        return image.mode


def _one_sentence(error):
    message = str(error.value)
    assert message.endswith(".") and ". " not in message, message


# ------------------------------------------------------------------------------------ pretext


def test_pretext_reads_train_photos_holds_out_val_photos_and_drops_greyscale(tiny_root):
    source = parse_dataset(f"tinyimagenet:{tiny_root}", val_fraction=0.5, seed=3)  # val_fraction is not used
    assert source.kind == "files" and source.num_train == len(WNIDS) * PER_CLASS
    assert source.train_paths == sorted(source.train_paths)  # as a folder source's, shuffled by the pipeline
    assert source.val_paths == sorted(str(tiny_root / "val" / "images" / f"val_{k}.JPEG") for k in VAL)
    held_out = list(pretext_dataset(source, "val", image_size=16, batch_size=4))
    assert _count(held_out) == len(VAL) - 1  # the equal-channel RGB photo is dropped
    source.val_paths = source.train_paths  # one ordered pass over the train photos
    assert _count(pretext_dataset(source, "val", image_size=16, batch_size=8)) == len(WNIDS) * PER_CLASS - 1
    assert source.stats.as_dict()["greyscale"] == 2 and source.stats.as_dict()["skipped"] == 0
    gray, ab = next(iter(pretext_dataset(source, "train", image_size=16, batch_size=4)))
    assert gray.shape == (4, 16, 16, 1) and ab.shape == (4, 16, 16, 2)


def test_at_most_n_photos_per_class_are_nested_and_the_first_by_integer_index(tiny_root):
    spec = f"tinyimagenet:{tiny_root}"
    subsets = {n: set(parse_dataset(spec, max_photos_per_class=n).train_paths) for n in (2, 4, 0)}
    assert subsets[2] < subsets[4] < subsets[0] and len(subsets[0]) == len(WNIDS) * PER_CLASS
    assert set(parse_dataset(spec, max_photos_per_class=None).train_paths) == subsets[0]
    assert sorted(map(_index, subsets[2])) == sorted((w, i) for w in WNIDS for i in (0, 1))
    assert sorted(map(_index, subsets[4])) == sorted((w, i) for w in WNIDS for i in range(4))  # not _10, _11
    assert parse_dataset(spec, max_photos_per_class=4).val_paths == parse_dataset(spec).val_paths
    with pytest.raises(ValueError, match="received -1") as error:
        parse_dataset(spec, max_photos_per_class=-1)
    _one_sentence(error)
    with pytest.raises(ValueError, match="received 5 with --dataset 'synthetic'") as error:
        parse_dataset("synthetic", max_photos_per_class=5)
    _one_sentence(error)


# ------------------------------------------------------------------------------------ labelled


def test_classes_come_from_wnids_in_order_with_names_from_words(tiny_root):
    assert tinyimagenet.read_wnids(tiny_root) == list(WNIDS)
    source = labelled.parse_labelled(f"tinyimagenet:{tiny_root}", "classification")
    assert source.num_classes == 3 and source.class_names == ["cat", "dog", "n0002"]
    assert source.single_label and source.void_index is None and source.kind == "folder"
    assert source.summary().startswith("tinyimagenet classification (fixed split): 3 classes, train 12")


def test_labelled_splits_are_fixed_disjoint_and_the_train_order_class_balanced(tiny_root):
    source = labelled.parse_labelled(f"tinyimagenet:{tiny_root}", "classification", seed=1)
    splits = {name: source.splits[name] for name in SPLITS}
    assert sum(map(len, splits.values())) == len(set().union(*splits.values())) == 3 * PER_CLASS + len(VAL)
    # test: every val photo in the order of k, with the class of its annotation
    assert splits["test"] == [str(tiny_root / "val" / "images" / f"val_{k}.JPEG") for k in sorted(VAL)]
    test_classes = np.argmax(source.label_matrix("test"), axis=1)
    assert [WNIDS[c] for c in test_classes] == [VAL[k] for k in sorted(VAL)]
    # val: the last 10 of each class by index; train: the rest
    held = tinyimagenet.TINY_VAL_PER_CLASS
    assert sorted(map(_index, splits["val"])) == sorted((w, i) for w in WNIDS for i in range(PER_CLASS - held,
                                                                                             PER_CLASS))
    assert sorted(map(_index, splits["train"])) == sorted((w, i) for w in WNIDS for i in range(PER_CLASS - held))
    train_classes = [WNIDS.index(_index(p)[0]) for p in splits["train"]]
    for k in range(1, PER_CLASS - held + 1):
        assert np.bincount(train_classes[:k * 3], minlength=3).tolist() == [k] * 3
    for split in SPLITS:  # one-hot labels agreeing with the photo's class
        matrix = source.label_matrix(split)
        assert matrix.dtype == np.float32 and set(np.unique(matrix)) == {0.0, 1.0}
        assert (matrix.sum(axis=1) == 1).all()
        if split != "test":
            assert [WNIDS[c] for c in matrix.argmax(1)] == [_index(p)[0] for p in splits[split]]
    # the seed reorders train within each class, nothing else; split_mode changes nothing
    other = labelled.parse_labelled(f"tinyimagenet:{tiny_root}", "classification", seed=2,
                                    split_mode="official")
    assert other.splits["train"] != splits["train"] and sorted(other.splits["train"]) == sorted(splits["train"])
    assert other.splits["val"] == splits["val"] and other.splits["test"] == splits["test"]
    x, y = next(iter(labelled.classification_dataset(source, "test", image_size=16, batch_size=len(VAL))))
    assert x.shape == (len(VAL), 16, 16, 1)
    np.testing.assert_array_equal(y.numpy(), source.label_matrix("test"))


def test_errors_are_one_sentence_and_name_the_path(tiny_root, tmp_path):
    spec = f"tinyimagenet:{tiny_root}"
    with pytest.raises(ValueError, match="no segmentation masks") as error:
        labelled.parse_labelled(spec, "segmentation")
    _one_sentence(error)
    with pytest.raises(ValueError, match="has 3 classes"):
        labelled.parse_labelled(spec, "classification", num_classes=200)
    with pytest.raises(FileNotFoundError, match="nowhere") as error:
        parse_dataset(f"tinyimagenet:{tmp_path / 'nowhere'}")
    _one_sentence(error)

    def broken(name, change):
        root = tmp_path / name
        shutil.copytree(tiny_root, root)
        change(root)
        return root

    root = broken("no_wnids", lambda r: (r / "wnids.txt").unlink())
    for parse in (lambda: parse_dataset(f"tinyimagenet:{root}"),
                  lambda: labelled.parse_labelled(f"tinyimagenet:{root}", "classification")):
        with pytest.raises(FileNotFoundError, match=f"'{root}' has no wnids.txt") as error:
            parse()
        _one_sentence(error)
    root = broken("stray_wnid", lambda r: (r / "val" / "val_annotations.txt").write_text(
        "val_0.JPEG\tn0002\t0\t0\t1\t1\nval_1.JPEG\tn9999\t0\t0\t1\t1\n"))
    with pytest.raises(ValueError, match=r"Line 2 of .*val_annotations.txt' labels val_1.JPEG with 'n9999'") as error:
        labelled.parse_labelled(f"tinyimagenet:{root}", "classification")
    _one_sentence(error)
    parse_dataset(f"tinyimagenet:{root}")  # the pretext reads no labels
    def empty_class(root):
        for photo in (root / "train" / "n0002" / "images").iterdir():
            photo.unlink()

    root = broken("empty_class", empty_class)
    folder = root / "train" / "n0002" / "images"
    with pytest.raises(ValueError, match=f"'{folder}' holds no images") as error:
        parse_dataset(f"tinyimagenet:{root}")
    _one_sentence(error)


# ------------------------------------------------------------------------------------ real data


def test_real_tiny_imagenet():
    root = realdata("tiny-imagenet-200")
    spec = f"tinyimagenet:{root}"
    assert len(tinyimagenet.read_wnids(root)) == 202
    full = parse_dataset(spec)
    assert full.num_train == 50_500 and len(full.val_paths) == 5_058
    assert len(parse_dataset(spec, max_photos_per_class=5).train_paths) == 1_010
    source = labelled.parse_labelled(spec, "classification")
    assert source.num_classes == 202 and source.single_label
    sizes = {split: source.split_size(split) for split in SPLITS}
    assert sizes == {"train": 48_480, "val": 2_020, "test": 5_058}
    every = [p for split in SPLITS for p in source.splits[split]]
    assert len(set(every)) == len(every)
    first = np.argmax(source.label_matrix("train", size=202), axis=1)
    assert sorted(first.tolist()) == list(range(202))  # the first 202 train photos: one of each class
    # a real 1-channel photo is dropped from the pretext stream, a colour one kept
    grey = next(p for p in full.train_paths if _mode(p) == "L")
    colour = next(p for p in full.train_paths if _mode(p) == "RGB")
    full.val_paths = [grey, colour]
    assert _count(pretext_dataset(full, "val", image_size=64, batch_size=2)) == 1


def test_a_cache_of_one_subset_is_refused_for_another(tiny_root, tmp_path):
    from data.pipeline import cached_source

    spec = f"tinyimagenet:{tiny_root}"
    cache = str(tmp_path / "cache")
    small = cached_source(parse_dataset(spec, max_photos_per_class=2), cache, image_size=16, log=lambda *_: None)
    assert small.cache.count("train") == 6  # 2 a class (the greyscale photo is the 4th of its class)
    cached_source(parse_dataset(spec, max_photos_per_class=2), cache, image_size=16, log=lambda *_: None)
    with pytest.raises(ValueError, match="built from 12 photos and --dataset .* lists 18 here"):
        cached_source(parse_dataset(spec, max_photos_per_class=4), cache, image_size=16, log=lambda *_: None)
