"""Tests of the sequence-disjoint split of video frames (`split_mode="sequence"`): no sequence on two
sides but the validation sequence's contiguous train and val blocks with the gap between, the test
split exactly the named sequence, the same split for every seed, and refusals in one sentence."""

import math
import os

import numpy as np
import pytest
from PIL import Image

from data import labelled
from data.labelled.splits import (DEFAULT_TEST_SEQUENCE, SEQUENCE_GAP, SPLITS, _frame_key, _spread,
                                  frame_sequence, sequence_split)
from tests.conftest import realdata
from transfer import cli
from transfer.config import FinetuneConfig, ProbeConfig

# sequence -> (frame numbers in the train folder, in the val folder), as CamVid's SegNet copy spreads
# one sequence over both folders. Frame numbers are not zero-padded, so name order must compare them
# as numbers (0002BB_98 before 0002BB_105).
FIXTURE = {
    "0001AA": (range(0, 360, 30), ()),
    "0002BB": (range(0, 112, 7), range(112, 168, 7)),
    "0003CC": (range(900, 1140, 30), ()),
}
TEST, VAL = "0003CC", "0002BB"  # the named test sequence; the longest other one holds val


def _frames(sequence):
    train, val = FIXTURE[sequence]
    return [f"{sequence}_{i}" for i in (*train, *val)]


@pytest.fixture(scope="module")
def frames_root(tmp_path_factory):
    """A seg-folder ROOT (train/trainannot, val/valannot) of tiny frames from three fake sequences."""
    root = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(0)
    for sequence, (train, val) in FIXTURE.items():
        for folder, numbers in (("train", train), ("val", val)):
            for i in numbers:
                name = f"{sequence}_{i}"
                for sub in (folder, folder + "annot"):
                    (root / sub).mkdir(exist_ok=True)
                pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / folder / f"{name}.png")
                mask = np.full((8, 8), i % 3, np.uint8)
                mask[:2] = (i + 1) % 3
                Image.fromarray(mask).save(root / (folder + "annot") / f"{name}.png")
    return root


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def _one_sentence(message):
    return message.endswith(".") and ". " not in message and "\n" not in message


def test_sequence_split_keeps_sequences_apart(frames_root):
    spec = f"seg-folder:{frames_root}"
    source = labelled.parse_labelled(spec, "segmentation", split_mode="sequence", test_sequence=TEST,
                                     verbose=False)
    names = {split: [_stem(p) for p in source.splits[split]] for split in SPLITS}
    # test: exactly the named sequence, in frame order
    assert names["test"] == _frames(TEST)
    sequences = {split: {frame_sequence(n) for n in names[split]} for split in SPLITS}
    assert sequences == {"train": {"0001AA", VAL}, "val": {VAL}, "test": {TEST}}
    # The validation sequence: a training block, then SEQUENCE_GAP frames in no split, then val.
    outside = len(_frames("0001AA")) + len(_frames(VAL))
    n_val = round(0.15 * outside)
    ordered = _frames(VAL)
    assert names["val"] == ordered[-n_val:]
    block = len(ordered) - n_val - SEQUENCE_GAP
    assert sorted((n for n in names["train"] if n.startswith(VAL)), key=_frame_key) == ordered[:block]
    gap = ordered[block:block + SEQUENCE_GAP]
    assert len(gap) == SEQUENCE_GAP and not set(gap) & {n for split in SPLITS for n in names[split]}
    all_names = [n for sequence in FIXTURE for n in _frames(sequence)]
    assert sorted(sum(names.values(), []) + gap) == sorted(all_names)
    assert source.summary().endswith(f"(sequence split): 3 classes, void 255, "
                                     f"train {outside - n_val - SEQUENCE_GAP}, val {n_val}, "
                                     f"test {len(_frames(TEST))}")
    # No seed: every seed and task gives the same split, in the same order.
    for other in (labelled.parse_labelled(spec, "segmentation", split_mode="sequence", seed=7,
                                          test_sequence=TEST, verbose=False),
                  labelled.parse_labelled(spec, "classification", split_mode="sequence", seed=3,
                                          test_sequence=TEST, verbose=False)):
        assert other.splits == source.splits
    # Label fractions take prefixes of train, which nest and sample every training sequence.
    train = source.items("train")
    for fraction in (0.25, 0.5):
        prefix = source.items("train", math.ceil(fraction * len(train)))
        assert prefix == train[:len(prefix)]
        assert {frame_sequence(_stem(p)) for p in prefix} == {"0001AA", VAL}
    x, masks = next(iter(labelled.segmentation_dataset(source, "train", image_size=8, batch_size=4)))
    assert x.shape == (4, 8, 8, 1) and masks.shape == (4, 8, 8)


def test_val_sequence_can_be_named(frames_root):
    source = labelled.parse_labelled(f"seg-folder:{frames_root}", "segmentation", split_mode="sequence",
                                     test_sequence=TEST, val_sequence="0001AA", verbose=False)
    ordered = _frames("0001AA")
    n_val = round(0.15 * (len(ordered) + len(_frames(VAL))))  # 5 of the 36 frames outside the test
    assert [_stem(p) for p in source.splits["val"]] == ordered[-n_val:]
    train = {_stem(p) for p in source.splits["train"]}
    assert train == set(ordered[:len(ordered) - n_val - SEQUENCE_GAP]) | set(_frames(VAL))


def test_frame_order_and_spread_order():
    names = ["/x/S_10.png", "/x/S_9.png", "/x/T_1.png", "/x/S_100.png", "/x/S_2.png", "/x/T_0.png"]
    assert [frame_sequence(n) for n in names[:3]] == ["S", "S", "T"]
    assert frame_sequence("a/b_c/frame.png") is None and frame_sequence("_01.png") is None
    splits = sequence_split(names, test_sequence="T", gap=0, val_fraction=0.25)
    assert splits["test"] == ["/x/T_0.png", "/x/T_1.png"]
    assert splits["val"] == ["/x/S_100.png"]
    assert sorted(splits["train"], key=_frame_key) == ["/x/S_2.png", "/x/S_9.png", "/x/S_10.png"]
    assert _spread(list(range(8))) == [0, 4, 2, 6, 1, 5, 3, 7]
    order = _spread(list(range(307)))
    assert sorted(order) == list(range(307))
    for k in (16, 31, 100):  # every prefix covers the range with no hole wider than twice its share
        chosen = sorted(order[:k])
        assert max(np.diff([*chosen, 307])) <= 2 * math.ceil(307 / k) and chosen[0] == 0


def test_refusals_are_one_sentence(frames_root, tmp_path):
    spec = f"seg-folder:{frames_root}"
    cases = [
        (dict(test_sequence="0009ZZ"), "test_sequence '0009ZZ' is not a sequence of"),
        (dict(test_sequence=TEST, val_sequence="0009ZZ"), "val_sequence '0009ZZ' is not a sequence"),
        (dict(test_sequence=TEST, val_sequence=TEST), "are both '0003CC'"),
        (dict(test_sequence="0003CC_30"), "test_sequence must be a sequence name"),
        (dict(test_sequence=""), "test_sequence must be a sequence name"),
    ]
    for kwargs, start in cases:
        with pytest.raises(ValueError) as error:
            labelled.parse_labelled(spec, "segmentation", split_mode="sequence", verbose=False, **kwargs)
        message = str(error.value)
        assert start in message and _one_sentence(message), message
    with pytest.raises(ValueError) as error:  # the default, CamVid's 0006R0, is not in this set
        labelled.parse_labelled(spec, "segmentation", split_mode="sequence", verbose=False)
    assert str(error.value).endswith("whose sequences are 0001AA, 0002BB, 0003CC.")
    assert _one_sentence(str(error.value))
    # Names without a sequence prefix.
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    for name in ("frame01", "0001AA_3"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / f"{name}.png")
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "masks" / f"{name}.png")
    with pytest.raises(ValueError) as error:
        labelled.parse_labelled(f"seg-folder:{tmp_path / 'images'},{tmp_path / 'masks'}", "segmentation",
                                split_mode="sequence", test_sequence="0001AA", verbose=False)
    message = str(error.value)
    assert "1 of the 2" in message and "'frame01.png'" in message and _one_sentence(message), message
    # Sources that are not video frames refuse the mode.
    for other in ("synthetic", f"voc:{tmp_path}", "tinyimagenet:x"):
        with pytest.raises(ValueError) as error:
            labelled.parse_labelled(other, "classification", split_mode="sequence")
        message = str(error.value)
        assert message.startswith("split_mode='sequence' splits the video frames") and _one_sentence(message)


def test_flags():
    assert FinetuneConfig().test_sequence == ProbeConfig().test_sequence == DEFAULT_TEST_SEQUENCE
    for parser in (cli.finetune_parser("segmentation"), cli.finetune_parser("classification"),
                   cli.features_parser()):
        args = parser.parse_args(["--split-mode", "sequence", "--test-sequence", "0016E5",
                                  "--val-sequence", "0001TP"])
        assert (args.split_mode, args.test_sequence, args.val_sequence) == ("sequence", "0016E5", "0001TP")
    config = cli.finetune_parser("segmentation").parse([])
    assert (config.split_mode, config.test_sequence, config.val_sequence) == ("paper", "0006R0", None)


def test_real_camvid_sequence_split():
    root = realdata("camvid")
    by_sequence = {}
    for folder in ("train", "val"):
        for name in os.listdir(root / folder):
            by_sequence.setdefault(frame_sequence(name), []).append(_stem(name))
    assert {s: len(f) for s, f in by_sequence.items()} == {"0001TP": 62, "0006R0": 101, "0016E5": 305}
    source = labelled.parse_labelled(f"seg-folder:{root}", "segmentation", void_index=11,
                                     split_mode="sequence", verbose=False)
    assert [source.split_size(s) for s in SPLITS] == [307, 55, 101]
    names = {split: [_stem(p) for p in source.splits[split]] for split in SPLITS}
    assert names["test"] == sorted(by_sequence["0006R0"])  # all 101 frames of 0006R0
    e5 = sorted(by_sequence["0016E5"])
    assert names["val"] == e5[-55:]
    assert sorted(n for n in names["train"] if n.startswith("0016E5")) == e5[:245]
    assert sorted(n for n in names["train"] if n.startswith("0001TP")) == sorted(by_sequence["0001TP"])
    again = labelled.parse_labelled(f"seg-folder:{root}", "classification", void_index=11, seed=5,
                                    split_mode="sequence", verbose=False)
    assert again.splits == source.splits
