"""Tests of the downstream readers: VOC annotations and palette masks, stratified splits, joint
crops, folder sets (CamVid), TFDS voc/2012 (mocked) and the synthetic labelled scenes."""

import re
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from data.color import normalize_lab, rgb_to_lab
from data import labelled, synthetic
from data.labelled.masks import VOID, read_mask, scan_masks
from data.progress import PROGRESS_MIN_FILES, with_progress
from data.labelled.splits import SPLITS, _split_sizes, paper_split
from data.labelled.synthetic import SYNTHETIC_DOWNSTREAM_SEED, SYNTHETIC_STARTS
from data.labelled.transforms import PAD_VALUE, crop_pair, rescale_pair, resize_mask, resize_pair
from data.labelled.voc import VOC_CLASSES
from tests.conftest import realdata

S = 40  # fixture masks are S x S, so the evaluation centre crop is the whole mask

# ------------------------------------------------------------------------------------ fixtures


def voc_palette():
    """The standard VOC colour map: 256 RGB triples."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def _object_xml(name, difficult="", box=("12.0", "7.369", "30.5", "33.0"), parts=""):
    difficult_tag = f"<difficult>{difficult}</difficult>" if difficult != "" else "<difficult/>"
    return f"""  <object>
    <name>{name}</name>
    <pose/>
    <truncated/>
    {difficult_tag}
    <bndbox>
      <xmin>{box[0]}</xmin>
      <ymin>{box[1]}</ymin>
      <xmax>{box[2]}</xmax>
      <ymax>{box[3]}</ymax>
    </bndbox>{parts}
  </object>
"""


def _annotation_xml(image_id, objects):
    return f"""<annotation>
  <folder/>
  <filename>{image_id}.jpg</filename>
  <database/>
  <annotation/>
  <image/>
  <size>
    <height>{S}</height>
    <width>{S}</width>
    <depth>3</depth>
  </size>
  <segmented/>
{''.join(objects)}</annotation>
"""


# id -> objects (name, difficult) of the annotations
ANNOTATIONS = {
    "2008_000001": [("person", ""), ("dog", "1")],  # the dog is difficult
    "2008_000002": [("cat", "0"), ("cat", "")],
    "2008_000003": [("car", ""), ("bus", "0.0")],
    "2008_000004": [("chair", ""), ("sofa", "")],
    "2008_000005": [("person", "")],  # with layout parts (head, hand), which are not classes
    "2008_000006": [("horse", "")],
    "2008_000007": [("bird", "")],  # annotation without a JPEG: left out
}
NO_ANNOTATION = "2008_000008"  # a JPEG without an annotation: left out
SEGMENTED = ("2008_000001", "2008_000003", "2008_000004", "2008_000005")
SMALL = "2008_000005"  # smaller than S: padded with void


def _fixture_mask(image_id):
    """Index mask of a segmented fixture image: objects with void borders, as in VOC."""
    h, w = (24, 30) if image_id == SMALL else (S, S)
    mask = np.zeros((h, w), np.uint8)
    classes = {"2008_000001": (15, 12), "2008_000003": (7, 6), "2008_000004": (9, 18),
               SMALL: (15, 15)}[image_id]
    mask[2:h // 2, 2:w // 2] = 255  # void border ...
    mask[3:h // 2 - 1, 3:w // 2 - 1] = classes[0]  # ... around an object
    mask[h // 2:h - 2, w // 2:w - 2] = 255
    mask[h // 2 + 1:h - 3, w // 2 + 1:w - 3] = classes[1]
    return mask


def make_vocdevkit(base):
    root = base / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "Annotations", "SegmentationClass", "ImageSets/Main",
                "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    parts = "\n    <part><name>head</name></part>\n    <part><name>hand</name></part>"
    for image_id, objects in ANNOTATIONS.items():
        xml = [_object_xml(name, diff, parts=parts if image_id == SMALL else "")
               for name, diff in objects]
        (root / "Annotations" / f"{image_id}.xml").write_text(_annotation_xml(image_id, xml))
    for image_id in list(ANNOTATIONS)[:-1] + [NO_ANNOTATION]:
        h, w = (24, 30) if image_id == SMALL else (S, S)
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
    palette = voc_palette()
    for image_id in SEGMENTED:
        png = Image.fromarray(_fixture_mask(image_id), mode="P")
        png.putpalette(palette)
        png.save(root / "SegmentationClass" / f"{image_id}.png")
    main = root / "ImageSets" / "Main"
    (main / "train.txt").write_text("2008_000001\n2008_000002\n2008_000003\n")
    (main / "val.txt").write_text("2008_000004\n2008_000005\n2008_000006\n")
    seg = root / "ImageSets" / "Segmentation"
    (seg / "train.txt").write_text("2008_000001\n2008_000003\n")
    (seg / "val.txt").write_text("2008_000004\n2008_000005\n")
    return root


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    return make_vocdevkit(tmp_path_factory.mktemp("voc"))


def _names(row):
    return {VOC_CLASSES[i] for i in np.flatnonzero(row)}


def _all(ds):
    """Concatenates every batch of a (inputs, targets) dataset into two numpy arrays."""
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


# ------------------------------------------------------------------------------------ VOC


@pytest.mark.parametrize("difficult", [True, False])
def test_voc_classification_labels(voc_root, difficult):
    source = labelled.parse_labelled(f"voc:{voc_root}", "classification",
                                     include_difficult=difficult)
    expected = {image_id: {name for name, diff in objects if difficult or diff not in ("1",)}
                for image_id, objects in ANNOTATIONS.items()}
    # Every annotation with a JPEG, and nothing else.
    assert sorted(source.labels) == sorted(list(ANNOTATIONS)[:-1])
    for image_id, row in source.labels.items():
        assert _names(row) == expected[image_id], image_id
    assert ("dog" in _names(source.labels["2008_000001"])) is difficult
    assert source.num_classes == 20 and source.class_names == list(VOC_CLASSES)
    assert VOC_CLASSES[0] == "aeroplane" and VOC_CLASSES[19] == "tvmonitor"
    # The paper split of 6 images: disjoint, covering, each split non-empty.
    splits = [set(source.splits[s]) for s in SPLITS]
    assert set.union(*splits) == set(source.labels) and sum(map(len, splits)) == 6
    assert all(splits)


def test_voc_root_variants_and_streaming(voc_root):
    for path in (voc_root, voc_root.parent, voc_root.parent.parent):
        source = labelled.parse_labelled(f"voc:{path}", "classification")
        assert source.root == str(voc_root)
    x, y = _all(labelled.classification_dataset(source, "train", image_size=32, batch_size=2))
    assert x.shape == (source.split_size("train"), 32, 32, 1) and x.dtype == np.float32
    assert -1.0 <= x.min() and x.max() <= 1.0
    assert y.shape == (source.split_size("train"), 20) and set(np.unique(y)) <= {0.0, 1.0}
    np.testing.assert_array_equal(np.sort(y, 0), np.sort(source.label_matrix("train"), 0))


def test_voc_official_lists(voc_root):
    source = labelled.parse_labelled(f"voc:{voc_root}", "classification", split_mode="official")
    assert source.splits["train"] == ["2008_000001", "2008_000002", "2008_000003"]
    assert source.splits["val"] == ["2008_000004", "2008_000005", "2008_000006"]
    assert source.splits["test"] == source.splits["val"]  # VOC test labels are private
    seg = labelled.parse_labelled(f"voc:{voc_root}", "segmentation", split_mode="official")
    assert seg.splits["train"] == ["2008_000001", "2008_000003"]
    assert seg.splits["val"] == seg.splits["test"] == ["2008_000004", "2008_000005"]
    # Paper mode: the union of the Segmentation lists, re-split.
    paper = labelled.parse_labelled(f"voc:{voc_root}", "segmentation")
    assert sorted(sum(paper.splits.values(), [])) == sorted(SEGMENTED)


def test_voc_palette_masks_are_read_as_indices(voc_root):
    path = voc_root / "SegmentationClass" / "2008_000001.png"
    image = Image.open(path)
    assert image.mode == "P"
    as_grey = np.asarray(image.convert("L"))
    as_rgb = np.asarray(image.convert("RGB"))
    mask = read_mask(path)
    y, x = 5, 5  # a person pixel (15), whose colour (192, 128, 128) is grey 147
    assert mask[y, x] == 15 and as_grey[y, x] != 15 and tuple(as_rgb[y, x]) == (192, 128, 128)
    np.testing.assert_array_equal(mask, _fixture_mask("2008_000001"))
    assert set(np.unique(mask)) == {0, 12, 15, 255}


def test_voc_segmentation_stream(voc_root):
    source = labelled.parse_labelled(f"voc:{voc_root}", "segmentation", split_mode="official")
    assert source.num_classes == 21 and source.void_index == VOID == 255
    assert source.class_names[0] == "background" and source.class_names[15] == "person"
    x, masks = _all(labelled.segmentation_dataset(source, "val", image_size=S, batch_size=4))
    assert x.shape == (2, S, S, 1) and masks.shape == (2, S, S) and masks.dtype == np.int32
    np.testing.assert_array_equal(masks[0], _fixture_mask("2008_000004"))  # centre crop = all
    small = _fixture_mask(SMALL)  # 24 x 30, padded with void by 8 rows and 5 columns each side
    np.testing.assert_array_equal(masks[1][8:32, 5:35], small)
    padding = np.ones((S, S), bool)
    padding[8:32, 5:35] = False
    assert (masks[1][padding] == 255).all()
    # Training: random joint crops; each pass is one epoch over the split.
    train = labelled.segmentation_dataset(source, "train", image_size=24, batch_size=2, seed=3)
    for _ in range(2):
        x, masks = _all(train)
        assert x.shape == (2, 24, 24, 1)
        assert set(np.unique(masks)) <= {0, 6, 7, 12, 15, 255}
    # Mask-derived image-level labels (paper mode) hold the mask classes.
    paper = labelled.parse_labelled(f"voc:{voc_root}", "segmentation")
    assert set(np.flatnonzero(paper.labels["2008_000001"])) == {0, 12, 15}


def test_voc_errors(voc_root, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        labelled.parse_labelled(f"voc:{missing}", "classification")
    no_ann = tmp_path / "VOC2012"
    (no_ann / "JPEGImages").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no Annotations"):
        labelled.parse_labelled(f"voc:{no_ann}", "classification")
    with pytest.raises(FileNotFoundError, match="no SegmentationClass"):
        labelled.parse_labelled(f"voc:{no_ann}", "segmentation")
    with pytest.raises(ValueError, match="'imagenet:x'"):
        labelled.parse_labelled("imagenet:x", "classification")
    with pytest.raises(ValueError, match="'detection'"):
        labelled.parse_labelled("synthetic", "detection")
    with pytest.raises(ValueError, match="segmentation"):
        labelled.parse_labelled("tfds:voc/2012", "segmentation")
    empty_masks = tmp_path / "masks"
    empty_masks.mkdir()
    with pytest.raises(ValueError, match="No image/mask pairs found"):
        labelled.parse_labelled(f"seg-folder:{voc_root / 'JPEGImages'},{empty_masks}",
                                "segmentation")
    with pytest.raises(FileNotFoundError, match="official split list"):
        labelled.parse_labelled(f"voc:{realdata('voc2012-mini')}", "classification",
                                split_mode="official")


# ------------------------------------------------------------------------------------ splits


@pytest.mark.parametrize("n, sizes", [(17125, (11987, 3425, 1713)), (2913, (2039, 577, 297))])
def test_paper_split_sizes_and_stratification(n, sizes):
    rng = np.random.default_rng(n)
    prevalence = rng.uniform(0.01, 0.45, 20)
    labels = rng.random((n, 20)) < prevalence
    ids = [f"img{i:05d}" for i in range(n)]
    split = paper_split(ids, labels, seed=0)
    assert tuple(len(split[s]) for s in SPLITS) == sizes
    parts = [set(split[s]) for s in SPLITS]
    assert set.union(*parts) == set(ids) and sum(map(len, parts)) == n  # disjoint, covering
    assert paper_split(ids, labels, seed=0) == split  # deterministic
    assert paper_split(ids, labels, seed=1) != split
    index = {image_id: i for i, image_id in enumerate(ids)}
    overall = labels.mean(0)
    for s in SPLITS:
        rows = [index[i] for i in split[s]]
        assert np.abs(labels[rows].mean(0) - overall).max() < 0.02, s


def test_split_size_rule():
    assert _split_sizes(17125, (0.7, 0.2, 0.1)) == [11987, 3425, 1713]
    assert _split_sizes(100, (0.7, 0.2, 0.1)) == [70, 20, 10]
    assert _split_sizes(3, (0.7, 0.2, 0.1)) == [1, 1, 1]
    assert _split_sizes(101, (2 / 3, 1 / 3)) == [67, 34]


# ------------------------------------------------------------------------------------ masks


def test_mask_class_set_survives_resize_and_crop():
    rng = np.random.default_rng(0)
    mask = rng.choice(np.array([0, 3, 7], np.int32), size=(37, 53))
    mask[5:20, 10:30] = 255  # a void block
    classes = set(np.unique(mask))
    rgb = tf.random.uniform([37, 53, 3])
    for size in ((20, 20), (64, 80), (37, 53), (9, 100)):
        out = resize_mask(tf.constant(mask), size).numpy()
        assert out.shape == size and out.dtype == np.int32
        assert set(np.unique(out)) <= classes and (out == 255).any()
    _, out = resize_pair(rgb, tf.constant(mask), 32)
    assert set(np.unique(out.numpy())) <= classes
    for seed in range(5):
        image, out = crop_pair(rgb, tf.constant(mask), 32, seed=tf.constant([seed, 1]))
        assert set(np.unique(out.numpy())) <= classes and image.shape == (32, 32, 3)
    # Padding: the mask with void, the image with mid-grey.
    image, out = crop_pair(rgb, tf.constant(mask), 64, seed=tf.constant([0, 0]))
    image, out = image.numpy(), out.numpy()
    assert (out == 255).sum() >= 64 * 64 - 37 * 53 + (mask == 255).sum()
    assert set(np.unique(out)) <= classes
    np.testing.assert_array_equal(out[:, 0], 255)  # padded columns left and right
    np.testing.assert_allclose(image[:, 0], PAD_VALUE)
    # Joint: the crop of the image and the mask come from the same window.
    marker = np.arange(37 * 53, dtype=np.float32).reshape(37, 53)
    pair_image, pair_mask = crop_pair(tf.stack([marker] * 3, -1) / 1e4,
                                      tf.constant(marker.astype(np.int32)), 16,
                                      seed=tf.constant([4, 2]))
    np.testing.assert_allclose(pair_image.numpy()[..., 0] * 1e4, pair_mask.numpy(), atol=1e-3)


# ------------------------------------------------------------------------------------ real data


def test_real_voc_mini():
    root = realdata("voc2012-mini", "VOCdevkit", "VOC2012")
    source = labelled.parse_labelled(f"voc:{root}", "classification")
    assert {k: _names(v) for k, v in source.labels.items()} == {
        "2011_000003": {"person"}, "2011_000006": {"person"}, "2011_000025": {"bus", "car"}}
    count = 0
    for split in SPLITS:
        x, y = _all(labelled.classification_dataset(source, split, image_size=64, batch_size=2))
        np.testing.assert_array_equal(y, source.label_matrix(split))
        count += len(x)
    assert count == 3
    seg = labelled.parse_labelled(f"voc:{root.parent}", "segmentation")
    for image_id, path in seg.mask_paths.items():
        raw = np.asarray(Image.open(path))
        np.testing.assert_array_equal(read_mask(path), raw)  # indices, 255 kept
    assert set(np.flatnonzero(seg.labels["2011_000025"])) == {0, 6, 7}  # bus 6, car 7
    for split in SPLITS:
        item = seg.splits[split][0]
        raw = set(np.unique(np.asarray(Image.open(seg.mask_paths[item]))))
        _, masks = _all(labelled.segmentation_dataset(seg, split, image_size=128, batch_size=1,
                                                      eval_fit="resize", training=False))
        assert set(np.unique(masks)) <= raw


def test_real_camvid():
    root = realdata("camvid")
    spec = (f"seg-folder:{root / 'train'},{root / 'trainannot'};"
            f"{root / 'val'},{root / 'valannot'}")
    source = labelled.parse_labelled(spec, "segmentation", void_index=11, split_mode="official")
    assert source.num_classes == 11 and source.void_index == 255 and source.file_void_index == 11
    assert source.split_size("train") == 367
    assert source.split_size("val") + source.split_size("test") == 101
    item = source.splits["train"][0]
    raw = np.asarray(Image.open(source.mask_paths[item]))
    mask = read_mask(source.mask_paths[item], 11, 11)
    np.testing.assert_array_equal(mask == 255, raw == 11)
    np.testing.assert_array_equal(mask[raw != 11], raw[raw != 11])
    x, masks = next(iter(labelled.segmentation_dataset(source, "train", image_size=128,
                                                       batch_size=4)))
    assert x.shape == (4, 128, 128, 1) and masks.dtype == tf.int32
    assert set(np.unique(masks.numpy())) <= set(range(11)) | {255}
    # The root layout, pooled and re-split 70/20/10 (paper mode); labels from the masks.
    pooled = labelled.parse_labelled(f"seg-folder:{root}", "classification", void_index=11)
    assert [pooled.split_size(s) for s in SPLITS] == [327, 94, 47]
    assert pooled.void_index is None and pooled.num_classes == 11
    labels = pooled.label_matrix("test")
    _, y = next(iter(labelled.classification_dataset(pooled, "test", image_size=32,
                                                     batch_size=len(labels))))
    np.testing.assert_array_equal(y.numpy(), labels)
    presence, counts = scan_masks([source.mask_paths[item]], 11, 11, 0.01)
    fractions = counts[0] / counts[0].sum()
    np.testing.assert_array_equal(presence[0], (fractions >= 0.01).astype(np.float32))


# ------------------------------------------------------------------------------------ TFDS


def test_tfds_voc(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with pytest.raises(FileNotFoundError, match="not prepared"):
        labelled.parse_labelled("tfds:voc/2012", "classification", tfds_data_dir=str(tmp_path))
    sizes = {"train": 7, "validation": 5}

    def fake_records(self, split, decoders=None, read_config=None, shuffle_files=False):
        rows = []
        for name in str(split).split("+"):
            offset = 0 if name == "train" else 100
            for i in range(sizes[name]):
                png = tf.io.encode_png(tf.fill([20, 30, 3], tf.constant(20 * i, tf.uint8)))
                rows.append((png, [(i + offset) % 20, 14], [14]))
        return tf.data.Dataset.from_tensor_slices({
            "image": tf.stack([r[0] for r in rows]),
            "labels": tf.ragged.constant([r[1] for r in rows], dtype=tf.int64),
            "labels_no_difficult": tf.ragged.constant([r[2] for r in rows], dtype=tf.int64),
        })

    with tfds.testing.mock_data(as_dataset_fn=fake_records), \
            mock.patch.object(tfds.core.DatasetBuilder, "is_prepared", return_value=True):
        source = labelled.parse_labelled("tfds:voc/2012", "classification",
                                         tfds_data_dir=str(tmp_path), split_mode="official")
        assert source.splits["train"] == list(range(7))
        assert source.splits["val"] == [7, 8, 9, 10, 11]
        x, y = _all(labelled.classification_dataset(source, "val", image_size=16, batch_size=2))
        assert x.shape == (5, 16, 16, 1)
        assert [sorted(np.flatnonzero(row)) for row in y] == [[0, 14], [1, 14], [2, 14], [3, 14],
                                                              [4, 14]]
        strict = labelled.parse_labelled("tfds:voc/2012", "classification", seed=1,
                                         tfds_data_dir=str(tmp_path), include_difficult=False)
        assert (strict.label_matrix("train")[:, 14] == 1).all()
        assert strict.label_matrix("train").sum() == strict.split_size("train")
        assert sum(strict.split_size(s) for s in SPLITS) == 12


# ------------------------------------------------------------------------------------ synthetic


def test_synthetic_labels_agree_with_masks_and_splits_differ():
    cls = labelled.parse_labelled("synthetic", "classification", synthetic_classes=5)
    seg = labelled.parse_labelled("synthetic", "segmentation", synthetic_classes=5)
    assert cls.num_classes == 5 and seg.num_classes == 6 and seg.class_names[0] == "background"
    assert seg.void_index is None
    size = 24
    x_cls, labels = _all(labelled.classification_dataset(cls, "val", image_size=size,
                                                         batch_size=8, size=size))
    x_seg, masks = _all(labelled.segmentation_dataset(seg, "val", image_size=size, batch_size=8,
                                                      size=size))
    assert x_cls.shape == (size, size, size, 1) and masks.shape == (size, size, size)
    np.testing.assert_array_equal(x_cls, x_seg)  # same scenes in the same order
    for label, mask in zip(labels, masks):
        present = {c - 1 for c in np.unique(mask) if c > 0}
        assert set(np.flatnonzero(label)) == present
        assert mask.max() <= 5 and mask.min() >= 0
    # L is the pretext's normalization of the rendered scene.
    scenes = synthetic.render_scenes(tf.range(SYNTHETIC_STARTS["val"],
                                              SYNTHETIC_STARTS["val"] + 2,
                                              dtype=tf.int64),
                                     seed=SYNTHETIC_DOWNSTREAM_SEED, image_size=size,
                                     num_classes=5)
    np.testing.assert_allclose(x_cls[:2], normalize_lab(rgb_to_lab(scenes["image"]))[0],
                               atol=1e-5)
    # Train / val / test and the pretext's scenes (seed 0 from index 0, val from 2**40) differ.
    sets = {}
    for split in SPLITS:
        x, _ = _all(labelled.classification_dataset(cls, split, image_size=size, batch_size=8,
                                                    size=16, training=False))
        sets[split] = {row.tobytes() for row in x}
        assert len(sets[split]) == 16
    pretext = synthetic.synthetic_dataset(seed=0, image_size=size, num_classes=5, count=16)
    pretext_l = {normalize_lab(rgb_to_lab(s["image"]))[0].numpy().tobytes() for s in pretext}
    for a in SPLITS:
        assert not sets[a] & pretext_l
        for b in SPLITS:
            assert a == b or not sets[a] & sets[b]
    # Training: one shuffled pass per iteration over the same items.
    train = labelled.classification_dataset(cls, "train", image_size=size, batch_size=8, size=16)
    first, second = _all(train)[0], _all(train)[0]
    assert {r.tobytes() for r in first} == {r.tobytes() for r in second} == sets["train"]
    assert cls.split_size("train", 16) == 16 and cls.split_size("test") == 512


def test_rescale_pair_keeps_the_class_set_and_aspect_and_void():
    mask = np.zeros((90, 120), np.int32)
    mask[10:60, 20:70] = 3
    mask[70:, 100:] = VOID
    rgb = np.random.default_rng(0).random((90, 120, 3)).astype(np.float32)
    small_rgb, small_mask = rescale_pair(tf.constant(rgb), tf.constant(mask), 30)
    assert tuple(small_mask.shape) == (30, 40) and tuple(small_rgb.shape) == (30, 40, 3)
    assert set(np.unique(small_mask.numpy())) == {0, 3, VOID}


# ------------------------------------------------------------------------------------ dispatch


def test_every_documented_prefix_has_one_parser_and_an_unknown_one_the_same_error():
    sources = labelled.__doc__.split("Sources")[1].split("\n\n")[0]
    documented = {spec.partition(":")[0] + spec.partition(":")[1]
                  for spec in re.findall(r"^  (\S+)", sources, re.MULTILINE)}
    assert documented == {"synthetic", "voc:", "tfds:", "seg-folder:", "tinyimagenet:"}
    assert set(labelled.SOURCES) == documented
    expected = ("The dataset must be 'synthetic', 'voc:PATH', 'tfds:voc/2012', "
                "'seg-folder:IMAGES,MASKS' (or 'seg-folder:TRAIN_IMAGES,TRAIN_MASKS;VAL_IMAGES,"
                "VAL_MASKS') or 'tinyimagenet:PATH', received {!r}.")
    for spec in ("imagenet:x", "voc:", "seg-folder:", "synthetic:x", "voc"):
        with pytest.raises(ValueError) as error:
            labelled.parse_labelled(spec, "classification")
        assert str(error.value) == expected.format(spec)


def test_progress_bar_only_over_many_files(capsys):
    assert list(with_progress(range(PROGRESS_MIN_FILES), PROGRESS_MIN_FILES, "masks")) == list(
        range(PROGRESS_MIN_FILES))
    assert capsys.readouterr().out == ""
    many = PROGRESS_MIN_FILES + 1
    assert list(with_progress(range(many), many, "masks", verbose=False)) == list(range(many))
    assert capsys.readouterr().out == ""
    assert list(with_progress(range(many), many, "masks")) == list(range(many))
    out = capsys.readouterr().out
    assert f"Reading {many} masks" in out and f"{many}/{many}" in out
