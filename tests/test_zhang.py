import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from cgan_colorization.pretexts import zhang
from cgan_colorization.pretexts.classification import build_classification_generator
from data.color import AB_SCALE, lab_to_rgb
from cgan_colorization.networks.models import build_generator
from data.pipeline import parse_dataset, pretext_dataset, to_lab_pair
from data.synthetic import synthetic_dataset
from tests.conftest import realdata

SURFACE_SAMPLES = 400  # per cube edge (256 misses a thin sliver of one cell)
HALF_DIAGONAL = 10 * np.sqrt(2) / 2  # farthest a colour in a kept 10 x 10 cell is from its centre


@pytest.fixture(scope="module")
def bins():
    return zhang.ab_gamut_bins()


@pytest.fixture(scope="module")
def synthetic_batch():
    """16 synthetic scenes at 32 x 32 as a normalized (L, ab) batch."""
    images = synthetic_dataset(seed=3, image_size=32, count=16).map(lambda s: s["image"]).batch(16)
    return to_lab_pair(next(iter(images)))


def _cube_surface_rgb(n):
    """n x n samples on each of the 6 faces of the sRGB cube: the colours whose ab reach farthest."""
    u = np.linspace(0.0, 1.0, n)
    uu, vv = (g.ravel() for g in np.meshgrid(u, u, indexing="ij"))
    faces = []
    for axis in range(3):
        others = [i for i in range(3) if i != axis]
        for value in (0.0, 1.0):
            face = np.empty((uu.size, 3))
            face[:, axis], face[:, others[0]], face[:, others[1]] = value, uu, vv
            faces.append(face)
    return np.concatenate(faces)


def _nearest_distance(ab_lab, bins):
    d2 = ((ab_lab[:, None, :] - bins[None, :, :].astype(np.float64)) ** 2).sum(-1)
    return np.sqrt(d2.min(axis=1))


def test_gamut_bins_are_the_cells_that_srgb_colours_fall_in(bins):
    from skimage.color import rgb2lab

    start = time.perf_counter()
    again = zhang.ab_gamut_bins()
    assert time.perf_counter() - start < 2.0
    np.testing.assert_array_equal(bins, again)  # deterministic
    assert bins.shape == (zhang.SRGB_GAMUT_BINS, 2) == (zhang.gamut_bin_count(), 2)
    assert bins.dtype == np.float32 and np.all(bins % 10 == 0)
    assert len({tuple(b) for b in bins.tolist()}) == len(bins)
    assert [tuple(b) for b in bins.tolist()] == sorted(tuple(b) for b in bins.tolist())
    # Same extent as the paper's 313 bins (a -90..100, b -110..100), which hold every one of ours.
    assert bins[:, 0].min() == -90 and bins[:, 0].max() == 100
    assert bins[:, 1].min() == -110 and bins[:, 1].max() <= 100

    # Independently: the ab of every sRGB colour (skimage, forward direction) on the cube's
    # surface, whose projection is the gamut's, fills exactly the kept cells.
    rgb = _cube_surface_rgb(SURFACE_SAMPLES)
    lab = rgb2lab(rgb[None])[0]
    cells = np.round(lab[:, 1:] / 10).astype(np.int64)
    cell_ids = (cells[:, 0] + 100) * 1000 + (cells[:, 1] + 100)
    hit, witnesses = np.unique(cell_ids, return_index=True)
    grid = bins.astype(np.int64) // 10
    bin_ids = (grid[:, 0] + 100) * 1000 + (grid[:, 1] + 100)
    np.testing.assert_array_equal(hit, bin_ids)  # both sorted by a, then b

    # A witness per bin converts back through the package's lab_to_rgb unclipped: in gamut.
    back = lab_to_rgb(tf.constant(lab[witnesses], tf.float64)).numpy()
    np.testing.assert_allclose(back, rgb[witnesses], atol=2e-4)
    assert np.all(np.abs(lab[witnesses, 1:] - bins) <= 5 + 1e-6)


def test_bins_cover_the_ab_of_real_photos(bins):
    folder = realdata("bsds500", "train")
    source = parse_dataset(f"folder:{folder}")
    batches = list(pretext_dataset(source, "train", image_size=64, batch_size=16).take(1))
    ab = np.concatenate([b.numpy().reshape(-1, 2) for _, b in batches]) * AB_SCALE
    ab = ab[np.random.default_rng(0).choice(len(ab), 20000, replace=False)]
    distance = _nearest_distance(ab, bins)
    assert np.mean(distance <= HALF_DIAGONAL + 1e-3) >= 0.99
    assert np.max(np.hypot(ab[:, 0], ab[:, 1])) > 20  # real colours, not a grey batch


def test_bins_cover_the_ab_of_synthetic_scenes(bins, synthetic_batch):
    ab = synthetic_batch[1].numpy().reshape(-1, 2) * AB_SCALE
    assert np.mean(_nearest_distance(ab, bins) <= HALF_DIAGONAL + 1e-3) >= 0.99


def test_soft_encoding_puts_gaussian_weights_on_the_five_nearest_bins(bins):
    rgb = tf.random.stateless_uniform([2, 6, 5, 3], seed=[1, 2])
    _, ab = to_lab_pair(rgb)
    target = zhang.soft_encode(ab, bins).numpy()
    assert target.shape == (2, 6, 5, len(bins))
    np.testing.assert_allclose(target.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.count_nonzero(target, axis=-1) == 5)

    ab_lab = ab.numpy().reshape(-1, 2).astype(np.float64) * AB_SCALE
    d2 = ((ab_lab[:, None] - bins[None].astype(np.float64)) ** 2).sum(-1)
    nearest = np.argsort(d2, axis=1)[:, :5]
    expected = np.zeros_like(d2)
    gauss = np.exp(-np.take_along_axis(d2, nearest, 1) / (2 * 5.0**2))
    np.put_along_axis(expected, nearest, gauss / gauss.sum(1, keepdims=True), 1)
    np.testing.assert_allclose(target.reshape(expected.shape), expected, atol=1e-5)

    # The same in tf.data and under XLA.
    mapped = tf.data.Dataset.from_tensors(ab).map(lambda x: zhang.soft_encode(x, bins))
    np.testing.assert_allclose(next(iter(mapped)).numpy(), target, atol=1e-6)
    jitted = tf.function(lambda x: zhang.soft_encode(x, bins), jit_compile=True)
    np.testing.assert_allclose(jitted(ab).numpy(), target, atol=1e-5)


def test_prior_is_a_distribution_and_streams(bins, synthetic_batch):
    _, ab = synthetic_batch
    batch = (tf.zeros([16, 32, 32, 1]), ab)
    two = zhang.ab_prior([batch] * 2, bins)
    four = zhang.ab_prior(tf.data.Dataset.from_tensors(batch).repeat(4), bins)
    endless = zhang.ab_prior(tf.data.Dataset.from_tensors(batch).repeat(), bins, max_batches=3)
    for prior in (two, four, endless):
        assert prior.shape == (len(bins),) and np.all(prior >= 0)
        assert prior.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(two, four, rtol=0, atol=1e-15)
    np.testing.assert_allclose(two, endless, rtol=0, atol=1e-15)
    # Chunking the pixels changes nothing; hard counts of one colour peak at its bin.
    np.testing.assert_allclose(zhang.ab_prior([batch], bins, chunk_pixels=1000), two, atol=1e-15)
    red = tf.fill([1, 4, 4, 2], 0.0) + tf.constant([40.0, 30.0]) / AB_SCALE
    prior = zhang.ab_prior([red], bins)
    peak = np.flatnonzero((bins == [40, 30]).all(1))[0]
    assert prior.argmax() == peak
    neighbour = np.flatnonzero((bins == [50, 30]).all(1))[0]
    assert prior[neighbour] / prior[peak] == pytest.approx(np.exp(-2.0), rel=0.05)  # sigma 5
    unsmoothed = zhang.ab_prior([red], bins, sigma=0)
    assert unsmoothed[peak] == 1.0 and unsmoothed.sum() == 1.0
    with pytest.raises(ValueError, match="no pixels"):
        zhang.ab_prior([], bins)


def test_rebalancing_weights_have_expectation_one_and_favour_rare_bins(bins, synthetic_batch):
    prior = zhang.ab_prior([synthetic_batch], bins)
    weights = zhang.rebalancing_weights(prior, lam=0.5)
    assert np.sum(prior * weights) == pytest.approx(1.0, abs=1e-12)
    expected = 1.0 / (0.5 * prior + 0.5 / len(bins))
    np.testing.assert_allclose(weights, expected / np.sum(prior * expected), rtol=1e-12)
    order = np.argsort(prior, kind="stable")
    p, w = prior[order], weights[order]
    assert np.all(np.diff(w) <= 0)  # rarer never weighs less...
    clearly_rarer = np.diff(p) > 1e-9
    assert clearly_rarer.sum() > 20 and np.all(np.diff(w)[clearly_rarer] < 0)  # ...and mostly more
    assert weights[prior.argmin()] > 1.0 > weights[prior.argmax()]
    np.testing.assert_allclose(zhang.rebalancing_weights(prior, lam=1.0), 1.0)
    with pytest.raises(ValueError, match="lam"):
        zhang.rebalancing_weights(prior, lam=1.5)


def test_annealed_mean_goes_from_mean_to_mode(bins):
    q = len(bins)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, q))
    top = rng.integers(0, q, size=(3, 4))
    np.put_along_axis(logits, top[..., None], logits.max(-1, keepdims=True) + 0.5, -1)
    logits = tf.constant(logits, tf.float32)

    mode = zhang.annealed_mean(logits, bins, temperature=0.01).numpy()
    np.testing.assert_allclose(mode, bins[top] / AB_SCALE, atol=1e-4)
    probs = tf.nn.softmax(logits).numpy().astype(np.float64)
    mean = zhang.annealed_mean(logits, bins, temperature=1.0).numpy()
    np.testing.assert_allclose(mean, probs @ bins / AB_SCALE, atol=1e-5)
    default = zhang.annealed_mean(logits, bins).numpy()
    assert np.all(np.linalg.norm(default - mean, axis=-1) < np.linalg.norm(mode - mean, axis=-1))
    with pytest.raises(ValueError, match="temperature"):
        zhang.annealed_mean(logits, bins, temperature=0.0)


def test_class_rebalanced_loss(bins, synthetic_batch):
    q = len(bins)
    _, ab = synthetic_batch
    ab = ab[:4, :8, :8]
    weights = zhang.rebalancing_weights(zhang.ab_prior([synthetic_batch], bins))
    loss = zhang.class_rebalanced_loss(bins, weights)

    target = zhang.soft_encode(ab, bins)
    nearest = zhang.nearest_bin(ab, bins).numpy()
    uniform = float(loss(ab, tf.zeros([4, 8, 8, q])))
    assert uniform == pytest.approx(np.log(q) * weights[nearest].mean(), rel=1e-5)
    concentrated = float(loss(ab, tf.math.log(target + 1e-7)))  # the minimum: the entropy of Z
    z = target.numpy()
    entropy = -(z * np.log(np.where(z > 0, z, 1.0))).sum(-1)
    assert concentrated == pytest.approx((weights[nearest] * entropy).mean(), rel=1e-3)
    assert np.isfinite(uniform) and concentrated < 0.5 * uniform

    # Matches the paper's formula computed by hand.
    logits = tf.random.stateless_normal([4, 8, 8, q], seed=[0, 1])
    log_probs = tf.nn.log_softmax(logits).numpy()
    by_hand = (weights[nearest] * -(target.numpy() * log_probs).sum(-1)).mean()
    assert float(loss(ab, logits)) == pytest.approx(by_hand, rel=1e-5)
    jitted = tf.function(loss, jit_compile=True)
    assert float(jitted(ab, logits)) == pytest.approx(by_hand, rel=1e-5)
    split = zhang.class_rebalanced_loss(bins, weights, global_batch_size=8)
    assert float(split(ab, logits)) == pytest.approx(by_hand / 2, rel=1e-5)

    with tf.GradientTape() as tape:
        tape.watch(logits)
        value = loss(ab, logits)
    gradient = tape.gradient(value, logits).numpy()
    assert np.isfinite(gradient).all() and np.abs(gradient).max() > 0


def test_a_few_adam_steps_of_the_classification_generator_lower_the_loss(bins, synthetic_batch):
    keras.utils.set_random_seed(0)
    gray, ab = synthetic_batch[0][:4], synthetic_batch[1][:4]
    weights = zhang.rebalancing_weights(zhang.ab_prior([synthetic_batch], bins))
    loss = zhang.class_rebalanced_loss(bins, weights)
    model = build_classification_generator(32, 8, len(bins), seed=0)
    optimizer = keras.optimizers.Adam(2e-3)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            value = loss(ab, model(gray, training=True))
        grads = tape.gradient(value, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return value

    losses = [float(step()) for _ in range(12)]
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0] and np.mean(losses[-3:]) < 0.93 * np.mean(losses[:3])


def test_classification_generator_shares_the_regression_generators_layers(bins):
    model = build_classification_generator(32, 8, len(bins), seed=0)
    assert model.output.shape == (None, 32, 32, len(bins)) and model.output.dtype == "float32"
    head = model.layers[-1]
    assert head.name == "output_logits_deconv" and head.activation is keras.activations.linear
    regression = build_generator(32, 8, seed=0)

    def shared(m):
        return {layer.name: [tuple(w.shape) for w in layer.weights] for layer in m.layers
                if layer.name.startswith(("enc", "dec", "bottleneck"))}

    assert shared(model) == shared(regression) and len(shared(model)) > 10
    for layer in model.layers:  # weights transfer by name
        if layer.name in shared(regression):
            regression.get_layer(layer.name).set_weights(layer.get_weights())
    assert build_classification_generator(32, 8, seed=0).output.shape[-1] == zhang.SRGB_GAMUT_BINS


def test_stats_round_trip(tmp_path, bins):
    rng = np.random.default_rng(0)
    prior = rng.dirichlet(np.ones(len(bins)))
    weights = zhang.rebalancing_weights(prior)
    path = zhang.save_zhang_stats(tmp_path / "run" / "zhang_stats.json", bins, prior, weights,
                                  dataset="folder:/photos", batches=np.int64(20), sigma=np.float32(5.0),
                                  lam=0.5)
    stats = zhang.load_zhang_stats(path)
    np.testing.assert_array_equal(stats.bins, bins)
    np.testing.assert_array_equal(stats.prior, prior)
    np.testing.assert_array_equal(stats.weights, weights)
    assert stats.meta == {"dataset": "folder:/photos", "batches": 20, "sigma": 5.0, "lam": 0.5}
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="zhang-ab-stats"):
        zhang.load_zhang_stats(tmp_path / "other.json")


def test_the_logged_colour_error_is_that_of_the_steps_own_logits(bins, synthetic_batch):
    from cgan_colorization.pretexts.classification import ClassificationColorizer

    keras.utils.set_random_seed(0)
    gray, ab = synthetic_batch[0][:4], synthetic_batch[1][:4]
    weights = zhang.rebalancing_weights(zhang.ab_prior([synthetic_batch], bins))
    model = ClassificationColorizer(build_classification_generator(32, 8, len(bins), seed=0), bins, weights)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    logs = model.evaluate(tf.data.Dataset.from_tensors((gray, ab)), verbose=0, return_dict=True)
    expected = float(tf.reduce_mean(tf.abs(model.predict_ab(gray) - ab)))  # validation: inference-mode logits
    assert logs["g_l1"] == pytest.approx(expected, rel=1e-5)
    assert logs["ce"] == pytest.approx(float(model.loss_fn(ab, model.net(gray, training=False))), rel=1e-5)
