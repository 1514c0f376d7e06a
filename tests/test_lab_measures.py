"""The colorization literature's Lab measures of evaluate_colorizer.py: Zhang et al. 2016's AuC of
the cumulative ab error curve (plain and class-rebalanced) and CIEDE2000, checked against hand
values, Sharma et al.'s published pairs and scikit-image."""

import json

import numpy as np
import pytest
import tensorflow as tf
from skimage.color import deltaE_ciede2000

from cgan_colorization.apps.cli import evaluate_main
from cgan_colorization.pretexts import zhang
from cgan_colorization.apps.evaluation import (AB_THRESHOLDS, AbErrorCurve, ciede2000, evaluate_colorizer,
                                          true_colour_bins)
from cgan_colorization.networks.models import build_generator
from data.color import normalize_lab, rgb_to_lab

# Sharma, Wu and Dalal 2005, Table 1 (as in scikit-image's skimage/color/tests/ciede2000_test_data.txt):
# L1, a1, b1, L2, a2, b2, published CIEDE2000. Pairs 7-16 probe the hue wrap-around and zero chroma.
SHARMA_PAIRS = np.array([
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
])
NUM_THRESHOLDS = AB_THRESHOLDS.size  # 151: 0, 1, ..., 150


@pytest.fixture(scope="module")
def bins():
    return zhang.ab_gamut_bins()


def test_ciede2000_matches_sharma_and_scikit_image():
    lab1, lab2, published = SHARMA_PAIRS[:, :3], SHARMA_PAIRS[:, 3:6], SHARMA_PAIRS[:, 6]
    ours = ciede2000(lab1, lab2).numpy()
    np.testing.assert_allclose(ours, deltaE_ciede2000(lab1, lab2), rtol=0, atol=1e-4)
    np.testing.assert_allclose(ours, published, rtol=0, atol=1e-4)  # published to 4 decimals


def test_ciede2000_matches_scikit_image_on_random_pairs_and_images():
    rng = np.random.default_rng(0)
    lab1 = np.stack([rng.uniform(0, 100, 500), rng.uniform(-110, 110, 500), rng.uniform(-110, 110, 500)], -1)
    lab2 = lab1 + rng.normal(0, 15, lab1.shape) * rng.integers(0, 2, (500, 1))  # near, far and identical
    np.testing.assert_allclose(ciede2000(lab1, lab2).numpy(), deltaE_ciede2000(lab1, lab2), rtol=0, atol=1e-4)
    rgb = rng.random((2, 3, 8, 8, 3))  # whole images, any leading shape
    lab_a, lab_b = (rgb_to_lab(tf.constant(x, tf.float64)).numpy() for x in rgb)
    np.testing.assert_allclose(ciede2000(lab_a, lab_b).numpy(), deltaE_ciede2000(lab_a, lab_b), atol=1e-4)
    assert np.all(ciede2000(lab_a, lab_a).numpy() == 0.0)


def _true_ab(rng, n=4096):
    """n varied ab colours (Lab units) of sRGB pixels."""
    return rgb_to_lab(tf.constant(rng.random((n, 3)), tf.float64)).numpy()[:, 1:]


def _curve(bins, ab_true, ab_pred):
    curve = AbErrorCurve(bins)
    curve.update(ab_true, ab_pred)
    return curve


def test_the_bin_look_up_is_zhangs_nearest_bin(bins):
    rng = np.random.default_rng(4)
    ab = np.concatenate([_true_ab(rng, 20000), rng.uniform(-150, 150, (2000, 2))])  # sRGB colours, and beyond
    np.testing.assert_array_equal(true_colour_bins(ab.reshape(4, -1, 2), bins).ravel(),
                                  zhang.nearest_bin(ab / 128.0, bins).numpy())


def test_auc_of_a_perfect_prediction_is_one(bins):
    ab = _true_ab(np.random.default_rng(1))
    curve = _curve(bins, ab, ab)
    assert curve.auc() == 1.0 and curve.auc(rebalanced=True) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_array_equal(curve.curve(), np.ones(NUM_THRESHOLDS))


@pytest.mark.parametrize("error", [0.0, 1.0, 2.5, 5.0, 37.0, 149.5, 150.0, 151.0, 200.0])
def test_auc_of_a_constant_error_is_the_step_curve_integral(bins, error):
    # Every pixel is off by exactly `error`: the curve is 0 below it and 1 from the first threshold t >= error
    # on, so with thresholds 0, 1, ..., 150 AuC = #{t >= error} / 151 = (150 - ceil(error) + 1) / 151, 0 past 150.
    ab = np.round(_true_ab(np.random.default_rng(2)))  # integer ab: the offsets below are exact in float64
    directions = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    curve = _curve(bins, ab, ab + error * directions[np.arange(len(ab)) % 4])
    expected = max(0, 150 - int(np.ceil(error)) + 1) / 151
    assert curve.auc() == pytest.approx(expected, abs=1e-12)
    assert curve.auc(rebalanced=True) == pytest.approx(expected, abs=1e-12)  # same error everywhere


def test_rebalanced_auc_equals_plain_for_one_true_colour_and_favours_rare_colours(bins):
    rng = np.random.default_rng(3)
    errors = rng.uniform(0, 160, 1000)
    one_colour = np.tile([[20.0, 30.0]], (1000, 1))
    curve = _curve(bins, one_colour, one_colour + np.stack([errors, np.zeros(1000)], -1))
    assert curve.auc(rebalanced=True) == pytest.approx(curve.auc(), abs=1e-12)

    # 90 % common grey pixels predicted exactly, 10 % rare orange ones off by 100.
    ab = np.array([[0.0, 0.0]] * 900 + [[60.0, 60.0]] * 100)
    pred = ab + np.array([[0.0, 0.0]] * 900 + [[60.0, 80.0]] * 100)
    curve = _curve(bins, ab, pred)
    wrong_share = (150 - 100 + 1) / 151  # the rare pixels' own AuC
    assert curve.auc() == pytest.approx(0.9 + 0.1 * wrong_share, abs=1e-12)
    counts = np.bincount(zhang.nearest_bin(ab / 128.0, bins).numpy(), minlength=len(bins))
    prior = zhang.smooth_prior(counts, bins)
    grey_bin, orange_bin = (int(zhang.nearest_bin(np.array(c) / 128.0, bins)) for c in ([0.0, 0.0], [60.0, 60.0]))
    w_grey, w_orange = 1 / prior[grey_bin], 1 / prior[orange_bin]
    expected = (900 * w_grey + 100 * w_orange * wrong_share) / (900 * w_grey + 100 * w_orange)
    assert curve.auc(rebalanced=True) == pytest.approx(expected, abs=1e-9)
    assert curve.auc(rebalanced=True) < curve.auc() - 0.2


def _photos(seed=0, n=4, size=32):
    rgb = np.random.default_rng(seed).random((n, size, size, 3)).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices(normalize_lab(rgb_to_lab(rgb))).batch(2)


def test_a_perfect_colorizer_scores_auc_one_and_no_colour_difference():
    data = _photos()
    truth = iter([ab for _, ab in data])
    perfect = evaluate_colorizer(lambda g: next(truth), data)["model"]
    assert perfect["ab_auc"] == 1.0 and perfect["ab_auc_rebalanced"] == pytest.approx(1.0)
    assert perfect["ciede2000"]["max"] == 0.0
    grey = evaluate_colorizer(lambda g: tf.zeros([*g.shape[:-1], 2]), data)
    assert grey["model"]["ab_auc"] == pytest.approx(grey["grey_baseline"]["ab_auc"], abs=1e-3)
    assert grey["model"]["ciede2000"]["mean"] == pytest.approx(grey["grey_baseline"]["ciede2000"]["mean"], abs=1e-2)
    assert grey["grey_baseline"]["ab_auc"] < 1.0 and grey["grey_baseline"]["ciede2000"]["mean"] > 1.0


def test_evaluate_colorizer_json_holds_the_lab_measures_and_the_protocol(tmp_path, capsys):
    build_generator(32, 4, seed=0).save(tmp_path / "generator.keras")
    out = tmp_path / "eval.json"
    evaluate_main(["--colorizer", str(tmp_path / "generator.keras"), "--max-images", "4", "--batch-size", "2",
                   "--out", str(out)])
    result = json.loads(out.read_text())
    for name in ("model", "grey_baseline"):
        scores = result[name]
        assert {"psnr", "ssim", "colourfulness", "ciede2000", "ab_auc", "ab_auc_rebalanced", "ab_error_cdf"} <= set(
            scores)
        assert 0.0 <= scores["ab_auc"] <= 1.0 and 0.0 <= scores["ab_auc_rebalanced"] <= 1.0
        assert len(scores["ab_error_cdf"]) == NUM_THRESHOLDS and scores["ab_error_cdf"][-1] <= 1.0
        assert np.all(np.diff(scores["ab_error_cdf"]) >= 0)
        assert scores["ab_auc"] == pytest.approx(np.mean(scores["ab_error_cdf"]), abs=1e-5)
        assert scores["ciede2000"]["min"] <= scores["ciede2000"]["mean"] <= scores["ciede2000"]["max"]
    protocol = result["protocol"]
    assert protocol["num_images"] == result["num_images"] == 4 and protocol["image_size"] == [32, 32]
    assert protocol["model_color_space"] == "lab" and protocol["dataset"] == "synthetic"
    assert protocol["ab_error_thresholds"] == {"start": 0.0, "stop": 150.0, "step": 1.0, "count": 151}
    assert "scored images" in protocol["ab_auc_rebalanced"]["prior"] and "resize_mode" in protocol
    table = capsys.readouterr().out
    assert "AuC ab" in table and "CIEDE2000" in table
