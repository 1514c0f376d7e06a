"""Tests of the procedural scenes: layout, determinism, labels vs mask, colour statistics."""

import numpy as np
import pytest
import tensorflow as tf

from data.color import rgb_to_lab
from data import synthetic

SIZE = 32
NUM_SCENES = 300


def _scenes(count, *, seed=0, num_classes=6, start=0, render_batch=64, image_size=SIZE,
            max_objects=3):
    """count scenes from the tf.data pipeline as one dict of numpy arrays."""
    ds = synthetic.synthetic_dataset(seed=seed, image_size=image_size, num_classes=num_classes,
                                     max_objects=max_objects, start=start, count=count,
                                     render_batch=render_batch)
    return {key: value.numpy() for key, value in next(iter(ds.batch(count))).items()}


@pytest.fixture(scope="module")
def scenes6():
    scenes = _scenes(NUM_SCENES, seed=1)
    scenes["lab"] = rgb_to_lab(scenes["image"]).numpy()
    return scenes


@pytest.fixture(scope="module")
def scenes8():
    scenes = _scenes(NUM_SCENES, seed=2, num_classes=8)
    scenes["lab"] = rgb_to_lab(scenes["image"]).numpy()
    return scenes


def _per_object_stats(scenes, num_classes):
    """Per class: arrays of (mean hue angle of ab in radians, mean L) over the scenes holding it.

    Each scene/class pair stands for one object (rarely two of the same class).
    """
    stats = {}
    for c in range(1, num_classes + 1):
        hues, lightness = [], []
        for lab, mask in zip(scenes["lab"], scenes["mask"]):
            pixels = lab[mask == c]
            if len(pixels):
                a, b = pixels[:, 1:].mean(axis=0)
                hues.append(np.arctan2(b, a))
                lightness.append(pixels[:, 0].mean())
        stats[c] = (np.array(hues), np.array(lightness))
    return stats


def _circular_mean_and_std(angles):
    mean = np.angle(np.exp(1j * angles).mean())
    deviations = np.angle(np.exp(1j * (angles - mean)))
    return mean, deviations.std()


def _angle_between(a, b):
    return abs(np.angle(np.exp(1j * (a - b))))


def test_constants():
    assert synthetic.MAX_CLASSES == 8
    assert len(synthetic.SYNTHETIC_CLASS_NAMES) == 8
    assert len(set(synthetic.SYNTHETIC_CLASS_NAMES)) == 8
    assert all(isinstance(name, str) and name for name in synthetic.SYNTHETIC_CLASS_NAMES)


def test_render_scenes_eager_shapes_dtypes_and_ranges():
    out = synthetic.render_scenes([3, 1, 4, 1, 5], seed=7, image_size=SIZE)  # int32 list is fine
    assert set(out) == {"image", "mask", "labels"}
    assert out["image"].shape == (5, SIZE, SIZE, 3) and out["image"].dtype == tf.float32
    assert out["mask"].shape == (5, SIZE, SIZE) and out["mask"].dtype == tf.int32
    assert out["labels"].shape == (5, 6) and out["labels"].dtype == tf.float32
    image, mask, labels = (out[key].numpy() for key in ("image", "mask", "labels"))
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert mask.min() >= 0 and mask.max() <= 6
    assert set(np.unique(labels)) <= {0.0, 1.0}
    # Indices 1 at positions 1 and 3 are the same scene.
    np.testing.assert_array_equal(image[1], image[3])
    assert not np.array_equal(image[0], image[1])


def test_dataset_element_spec_and_count():
    ds = synthetic.synthetic_dataset(image_size=SIZE, num_classes=4, count=10, render_batch=4)
    spec = ds.element_spec
    assert spec["image"].shape == (SIZE, SIZE, 3) and spec["image"].dtype == tf.float32
    assert spec["mask"].shape == (SIZE, SIZE) and spec["mask"].dtype == tf.int32
    assert spec["labels"].shape == (4,) and spec["labels"].dtype == tf.float32
    assert len(list(ds)) == 10


def test_count_none_is_infinite():
    ds = synthetic.synthetic_dataset(image_size=SIZE)
    assert ds.cardinality() == tf.data.INFINITE_CARDINALITY
    assert len(list(ds.take(70))) == 70  # crosses a render batch boundary


def test_scene_depends_only_on_seed_and_index():
    reference = _scenes(24, seed=5, start=0, render_batch=64)
    shifted = _scenes(13, seed=5, start=9, render_batch=5)
    for key in ("image", "mask", "labels"):
        np.testing.assert_array_equal(shifted[key], reference[key][9:22])  # bit for bit


def test_different_seeds_give_different_scenes():
    a = _scenes(16, seed=0)
    b = _scenes(16, seed=1)
    differing = [not np.array_equal(x, y) for x, y in zip(a["image"], b["image"])]
    assert all(differing)
    assert not np.array_equal(a["mask"], b["mask"])


def test_eager_render_matches_tf_data():
    from_dataset = _scenes(10, seed=4, start=100, render_batch=3)
    eager = synthetic.render_scenes(tf.range(100, 110, dtype=tf.int64), seed=4, image_size=SIZE)
    np.testing.assert_allclose(eager["image"].numpy(), from_dataset["image"], atol=1e-6)
    np.testing.assert_array_equal(eager["mask"].numpy(), from_dataset["mask"])
    np.testing.assert_array_equal(eager["labels"].numpy(), from_dataset["labels"])


def test_works_inside_tf_function_and_downstream_map():
    render = tf.function(lambda i: synthetic.render_scenes(i, seed=0, image_size=SIZE)["mask"])
    assert render(tf.range(3, dtype=tf.int64)).shape == (3, SIZE, SIZE)
    ds = synthetic.synthetic_dataset(image_size=SIZE, count=8).map(
        lambda scene: tf.reduce_mean(scene["image"])).batch(8)
    means = next(iter(ds)).numpy()
    assert means.shape == (8,) and np.all((means > 0.0) & (means < 1.0))


@pytest.mark.parametrize("fixture, num_classes", [("scenes6", 6), ("scenes8", 8)])
def test_labels_agree_with_mask_and_every_class_appears(request, fixture, num_classes):
    scenes = request.getfixturevalue(fixture)
    mask, labels = scenes["mask"], scenes["labels"]
    present = np.stack([(mask == c).any(axis=(1, 2)) for c in range(1, num_classes + 1)], axis=1)
    np.testing.assert_array_equal(labels, present.astype(np.float32))
    assert mask.min() == 0 and mask.max() == num_classes
    assert np.all(labels.sum(axis=0) >= 20)  # every class, many times
    assert np.all((mask > 0).any(axis=(1, 2)))  # no scene is all background
    assert np.all((mask == 0).any(axis=(1, 2)))  # nor all objects
    objects = labels.sum(axis=1)
    assert objects.min() >= 1 and objects.max() == 3  # 1..max_objects classes per scene


def test_single_class_single_object_small_image():
    scenes = _scenes(40, num_classes=1, max_objects=1, image_size=16)
    assert scenes["image"].shape == (40, 16, 16, 3)
    np.testing.assert_array_equal(scenes["labels"], np.ones((40, 1), np.float32))
    assert set(np.unique(scenes["mask"])) == {0, 1}


def test_max_objects_bounds_classes_per_scene():
    scenes = _scenes(60, num_classes=8, max_objects=5)
    per_scene = scenes["labels"].sum(axis=1)
    assert per_scene.min() >= 1 and per_scene.max() >= 4 and per_scene.max() <= 5


@pytest.mark.parametrize("fixture, num_classes", [("scenes6", 6), ("scenes8", 8)])
def test_colour_depends_on_class(request, fixture, num_classes):
    stats = _per_object_stats(request.getfixturevalue(fixture), num_classes)
    moments = {c: _circular_mean_and_std(hues) for c, (hues, _) in stats.items()}
    for c in stats:
        for d in stats:
            if c < d:
                between = _angle_between(moments[c][0], moments[d][0])
                # Class hue means are further apart than twice the summed within-class spreads.
                assert between > 2.0 * (moments[c][1] + moments[d][1]), (c, d)
    # Nearest class-mean hue identifies the class of almost every object.
    means = np.array([moments[c][0] for c in sorted(stats)])
    correct = total = 0
    for c, (hues, _) in stats.items():
        nearest = np.argmin(_angle_between(hues[:, None], means[None, :]), axis=1) + 1
        correct += int((nearest == c).sum())
        total += len(hues)
    assert correct / total >= 0.97


@pytest.mark.parametrize("fixture, num_classes", [("scenes6", 6), ("scenes8", 8)])
def test_lightness_alone_does_not_identify_class(request, fixture, num_classes):
    stats = _per_object_stats(request.getfixturevalue(fixture), num_classes)
    ranges = {c: np.percentile(lightness, [10, 90]) for c, (_, lightness) in stats.items()}
    for c, (_, lightness) in stats.items():
        assert lightness.std() > 5.0, c  # brightness varies within a class
        for d in stats:
            low = max(ranges[c][0], ranges[d][0])
            high = min(ranges[c][1], ranges[d][1])
            assert high - low > 5.0, (c, d)  # the central 80% of object L overlap pairwise


def test_background_is_desaturated_and_varied(scenes6):
    lab, mask = scenes6["lab"], scenes6["mask"]
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    background = mask == 0
    assert chroma[background].mean() < 12.0
    assert chroma[~background].mean() > 3.0 * chroma[background].mean()
    # Per-scene background colours point every way in the ab plane and vary in lightness.
    means = np.array([lab[i][background[i]].mean(axis=0) for i in range(len(lab))])
    quadrants = {(a > 0, b > 0) for a, b in means[:, 1:]}
    assert len(quadrants) == 4
    assert means[:, 0].std() > 8.0


def test_textures_modulate_lightness_inside_objects(scenes6):
    lab, mask = scenes6["lab"], scenes6["mask"]
    # Class 2 (striped squares): L varies far beyond the image grain inside one object.
    spreads = [np.ptp(lab[i][mask[i] == 2][:, 0])
               for i in range(len(lab)) if (mask[i] == 2).sum() > 30]
    assert len(spreads) >= 10 and np.median(spreads) > 15.0


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(num_classes=0), "received 0"),
        (dict(num_classes=9), "received 9"),
        (dict(image_size=15), "received 15"),
        (dict(max_objects=0), "received 0"),
    ],
)
def test_invalid_arguments_raise(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        synthetic.synthetic_dataset(**kwargs)
    render_kwargs = dict(seed=0, image_size=SIZE)
    render_kwargs.update(kwargs)
    with pytest.raises(ValueError, match=fragment):
        synthetic.render_scenes(tf.range(2, dtype=tf.int64), **render_kwargs)
