from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

from data import pets

tfds = pytest.importorskip("tensorflow_datasets")


def _prepared():
    """TFDS mocked offline, with `is_prepared` true (a mocked builder reports it false)."""
    return mock.patch.object(tfds.core.DatasetBuilder, "is_prepared", return_value=True)


def _all(ds):
    xs, colours, masks = [], [], []
    for x, y in ds:
        xs.append(x.numpy())
        colours.append(y["ab" if "ab" in y else "uv"].numpy())
        masks.append(y["mask"].numpy())
    return np.concatenate(xs), np.concatenate(colours), np.concatenate(masks)


def test_the_builder_has_the_features_the_reader_uses():
    info = tfds.builder_cls(pets.TFDS_NAME)(data_dir="/nonexistent").info
    assert {"image", "segmentation_mask"} <= set(info.features)
    assert info.features["segmentation_mask"].shape == (None, None, 1)


def test_not_prepared_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"oxford_iiit_pet is not prepared in .*tfds build"):
        pets.pets_dataset("train", 32, 4, data_dir=str(tmp_path))


def test_random_mock_records_give_the_right_shapes_and_ranges(tmp_path):
    with tfds.testing.mock_data(num_examples=5), _prepared():
        ds = pets.pets_dataset("test", 32, 2, data_dir=str(tmp_path))
        x, ab, mask = _all(ds)
        first_x, first_y = next(iter(ds))
    assert first_x.shape == (2, 32, 32, 1) and first_x.dtype == tf.float32
    assert first_y["ab"].shape == (2, 32, 32, 2) and first_y["mask"].shape == (2, 32, 32)
    assert first_y["mask"].dtype == tf.int32
    assert x.shape == (5, 32, 32, 1) and ab.shape == (5, 32, 32, 2) and mask.shape == (5, 32, 32)
    assert -1.0 <= x.min() and x.max() <= 1.0 and np.abs(ab).max() <= 1.0
    # Random trimaps hold values other than 1..3, which become void; the classes are 0, 1, 2.
    assert set(np.unique(mask)) <= {0, 1, 2, pets.VOID}


def _trimap_records(sizes, seed=0):
    """Records like the real ones: left half of the pet image red (the pet, trimap 1), right half
    blue (background, 2), a border column (3); images of different sizes."""
    rng = np.random.default_rng(seed)

    def fake(self, split, decoders=None, read_config=None, shuffle_files=False):
        def gen():
            for h, w in sizes:
                image = np.zeros([h, w, 3], np.uint8)
                image[:, : w // 2] = (200, 30, 30)
                image[:, w // 2:] = (30, 30, 200)
                mask = np.full([h, w, 1], 2, np.uint8)
                mask[:, : w // 2] = 1
                mask[:, w // 2 - 1: w // 2 + 1] = 3
                image = np.clip(image + rng.integers(-5, 6, image.shape), 0, 255).astype(np.uint8)
                yield {"image": image, "segmentation_mask": mask}
        return tf.data.Dataset.from_generator(gen, output_signature={
            "image": tf.TensorSpec([None, None, 3], tf.uint8),
            "segmentation_mask": tf.TensorSpec([None, None, 1], tf.uint8)})
    return fake


def test_trimaps_become_classes_0_1_2_and_flips_keep_image_and_mask_together(tmp_path):
    sizes = [(40, 64), (64, 64), (50, 30), (64, 48), (36, 36), (70, 52), (33, 65), (64, 64)]
    with tfds.testing.mock_data(as_dataset_fn=_trimap_records(sizes)), _prepared():
        x, ab, mask = _all(pets.pets_dataset("test", 16, 3, data_dir=str(tmp_path)))
        xt, abt, maskt = _all(pets.pets_dataset("train", 16, 3, data_dir=str(tmp_path), seed=0))
        y, uv, mask_yuv = _all(pets.pets_dataset("test", 16, 4, data_dir=str(tmp_path),
                                                 color_space="yuv"))
    assert x.shape == (8, 16, 16, 1) and set(np.unique(mask)) == {0, 1, 2}
    # Evaluation: ordered, unflipped: the pet (class 0) on the left, background (1) on the right.
    assert (mask[:, :, 0] == 0).all() and (mask[:, :, -1] == 1).all()
    # Pet pixels are red (a > 0), background pixels blue (b < 0), whatever the flip.
    for m, colour in ((mask, ab), (maskt, abt)):
        assert (colour[..., 0][m == 0] > 0.2).all() and (colour[..., 1][m == 1] < -0.2).all()
    flipped = (maskt[:, :, 0] == 1).all(axis=1)
    assert 0 < flipped.sum() < len(flipped), "training flips some examples, not all"
    assert y.shape == (8, 16, 16, 1) and 0.0 <= y.min() and y.max() <= 1.0
    np.testing.assert_array_equal(mask_yuv, mask)
    assert (uv[..., 1][mask == 0] > 0.1).all()  # red: V > 0


def test_trimap_lookup():
    values = tf.constant([0, 1, 2, 3, 4, 255], tf.uint8)
    np.testing.assert_array_equal(pets.trimap_to_classes(values).numpy(), [255, 0, 1, 2, 255, 255])


@pytest.mark.parametrize("kwargs,match", [
    ({"split": "validation"}, "splits"),
    ({"split": "train[:90%]+val"}, "splits"),
    ({"image_size": 0}, "image_size"),
    ({"batch_size": 2.0}, "batch_size"),
    ({"color_space": "rgb"}, "color_space"),
])
def test_bad_arguments_are_value_errors(kwargs, match):
    args = {"split": "train", "image_size": 32, "batch_size": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        pets.pets_dataset(**args)
