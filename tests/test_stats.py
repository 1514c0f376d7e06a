"""transfer.stats: the scores on resampled images, the paired hierarchical bootstrap (its coverage on
simulated studies with a planted gain), the verdicts, Holm, the forest plot, and the per-image data
that every fine-tuning run writes."""

import json

import numpy as np
import pytest

from transfer import metrics as tm
from transfer import stats


def _study(rng, pretext_runs=3, seeds=3, images=1000, gain=0.03, sd_pretext=0.005, sd_seed=0.01, sd_shared=0.0,
           sd_image_gain=0.1):
    """Top-1 answers of one simulated study: P(correct) = 0.30 (control) or 0.30 + gain (arm), plus an
    image difficulty common to all runs, a gain that varies by image (arm only), a pretext-run effect
    (arm only), a seed effect of each run, and a per-seed effect common to arm and control."""
    difficulty = rng.uniform(-0.2, 0.2, images)
    image_gain = rng.normal(0, sd_image_gain, images)
    shared = rng.normal(0, sd_shared, seeds)

    def run(p, seed, extra=0.0):
        chance = np.clip(p + difficulty + extra + shared[seed] + rng.normal(0, sd_seed), 0, 1)
        return {"correct": (rng.random(images) < chance).astype(np.int8), "seed": np.array(seed)}

    arm = []
    for _ in range(pretext_runs):
        effect = rng.normal(0, sd_pretext)
        arm.append([run(0.30 + gain + effect, s, image_gain) for s in range(seeds)])
    return arm, [run(0.30, s) for s in range(seeds)]


def test_the_95_interval_covers_the_planted_gain_at_least_about_95_times_in_100():
    rng = np.random.default_rng(0)
    separate, joint = [], []
    for study in range(200):
        arm, control = _study(rng)
        for scheme, hits in (("separate", separate), ("joint", joint)):
            result = stats.hierarchical_bootstrap(arm, control, "top1", n_boot=400, seed=study, scheme=scheme)
            hits.append(result.ci95[0] <= 3.0 <= result.ci95[1])
    # Over 200 studies the share covered by a true 95 % interval has a standard error of 1.5 points,
    # and percentile intervals of 400 draws on 3 pretext runs run a little short: 0.88..0.99 is about
    # nominal. The joint scheme counts the run-by-image noise at every level: it must not fall below
    # nominal, and here (noise dominates) covers nearly always.
    assert 0.88 <= np.mean(separate) <= 0.99, np.mean(separate)
    assert np.mean(joint) >= max(0.95, np.mean(separate)), (np.mean(joint), np.mean(separate))


def test_pairing_by_seed_narrows_the_interval_when_seeds_share_variance():
    rng = np.random.default_rng(1)
    arm, control = _study(rng, pretext_runs=2, seeds=4, images=2000, sd_seed=0.0, sd_shared=0.05)
    width = lambda result: result.ci95[1] - result.ci95[0]  # noqa: E731
    for scheme in stats.SCHEMES:
        paired = stats.hierarchical_bootstrap(arm, control, "top1", n_boot=1000, scheme=scheme)
        unpaired = stats.hierarchical_bootstrap(arm, control, "top1", n_boot=1000, paired=False, scheme=scheme)
        assert paired.gain == unpaired.gain and paired.paired and not unpaired.paired
        assert width(paired) < 0.7 * width(unpaired), (scheme, paired.ci95, unpaired.ci95)


def test_a_control_of_the_same_pretext_runs_pairs_with_them():
    # The same colorizer at two checkpoints: a pretext-run effect of sd 5 points common to both sides.
    rng = np.random.default_rng(3)
    difficulty = rng.uniform(-0.2, 0.2, 1000)
    answers = lambda chance, seed: {"correct": (rng.random(1000) < chance + difficulty).astype(np.int8),  # noqa: E731
                                    "seed": seed}
    effects = rng.normal(0, 0.05, 3)
    arm = [[answers(0.33 + effect, s) for s in range(3)] for effect in effects]
    control = [[answers(0.30 + effect, s) for s in range(3)] for effect in effects]
    paired = stats.hierarchical_bootstrap(arm, control, "top1", n_boot=1000, same_pretext=True)
    apart = stats.hierarchical_bootstrap(arm, control, "top1", n_boot=1000)
    assert paired.gain == pytest.approx(apart.gain) and paired.control_runs == 3
    assert np.ptp(paired.per_pretext) < 3 < np.ptp(apart.per_pretext)
    assert paired.ci95[1] - paired.ci95[0] < 0.6 * (apart.ci95[1] - apart.ci95[0]), (paired.ci95, apart.ci95)
    with pytest.raises(ValueError, match="one to one"):
        stats.hierarchical_bootstrap(arm, control[:2], "top1", same_pretext=True)


def test_observed_gain_p_value_and_pretext_gains():
    # Arm runs (pretext 0: 50 % and 60 % right, pretext 1: 70 % and 80 %), control 40 % and 50 %.
    answers = lambda share, seed: {"correct": (np.arange(100) < share).astype(np.int8), "seed": seed}  # noqa: E731
    arm = [[answers(50, 0), answers(60, 1)], [answers(70, 0), answers(80, 1)]]
    control = [answers(40, 0), answers(50, 1)]
    result = stats.hierarchical_bootstrap(arm, control, "top1", n_boot=500)
    assert result.gain == pytest.approx(20.0) and result.per_pretext == pytest.approx((10.0, 30.0))
    assert result.pretext_runs == 2 and result.seeds == 2 and result.images == 100 and result.control_runs == 1
    assert result.ci95[0] <= result.ci90[0] <= result.gain <= result.ci90[1] <= result.ci95[1]
    assert 1 / 500 <= result.p_value < 0.05
    same = stats.hierarchical_bootstrap(arm[:1], arm[0], "top1", n_boot=200)
    assert same.gain == 0 and same.p_value == 1.0 and same.ci95 == (0.0, 0.0)


def test_runs_that_do_not_pair_are_refused_in_one_sentence():
    run = lambda n, seed, items=None: dict(  # noqa: E731
        {"correct": np.ones(n, np.int8), "seed": seed}, **({"items": np.array(items)} if items else {}))
    with pytest.raises(ValueError, match="seed index 1 .*different test images"):
        stats.hierarchical_bootstrap([[run(3, 0), run(3, 1)]], [run(3, 0), run(4, 1)], "top1")
    with pytest.raises(ValueError, match=r"downstream seeds \[0, 1\]"):
        stats.hierarchical_bootstrap([[run(3, 0), run(3, 1)]], [run(3, 1), run(3, 0)], "top1")
    with pytest.raises(ValueError, match=r"needs the per-image arrays \['confusion'\]"):
        stats.hierarchical_bootstrap([[run(3, 0)]], [run(3, 0)], "mIoU")
    # Seeds with a test split of their own (a re-split per seed) pair within the seed.
    result = stats.hierarchical_bootstrap([[run(2, 0, ["a", "b"]), run(3, 1, ["c", "d", "e"])]],
                                          [run(2, 0, ["a", "b"]), run(3, 1, ["c", "d", "e"])], "top1", n_boot=50)
    assert result.gain == 0 and result.images == 3


def test_holm_by_hand():
    # Sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> raised to 0.06.
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(stats.holm([0.5, 0.6]), [1.0, 1.0])
    assert stats.holm([]).shape == (0,)
    with pytest.raises(ValueError, match="numbers in"):
        stats.holm([0.1, 1.5])


@pytest.mark.parametrize("ci95,ci90,expected", [
    ((0.5, 3.0), (0.8, 2.7), "helps"),
    ((-4.0, -1.5), (-3.6, -1.8), "hurts"),
    ((-0.6, 0.9), (-0.5, 0.8), "equivalent"),
    ((-0.9, 1.2), (-0.7, 0.99), "equivalent"),
    ((-0.9, 1.2), (-0.7, 1.0), "inconclusive"),  # the band is open: an end at the bound is not inside
    ((-2.0, 3.0), (-1.5, 2.5), "inconclusive"),
    ((0.1, 0.9), (0.2, 0.8), "helps (< 1 point)"),
    ((-0.8, -0.05), (-0.7, -0.1), "hurts (< 1 point)"),
])
def test_verdicts_on_hand_made_intervals(ci95, ci90, expected):
    assert stats.verdict(ci95, ci90) == expected


def test_verdict_with_another_smallest_effect():
    assert stats.verdict((-1.5, 1.8), (-1.2, 1.6), sesoi=2.0) == "equivalent"
    assert stats.verdict((0.2, 1.5), (0.3, 1.4), sesoi=2.0) == "helps (< 2 points)"
    with pytest.raises(ValueError, match="sesoi"):
        stats.verdict((0, 1), (0, 1), sesoi=0)


def test_miou_of_hand_computed_confusion_matrices():
    first = np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]])
    second = np.array([[1, 0, 0], [1, 1, 2], [0, 0, 0]])  # class 2 only predicted: IoU 0, and it counts
    run = {"confusion": np.stack([first, second]).astype(np.int32)}
    # Sum [[4,1,0],[1,3,2],[0,0,0]]: IoU 4/6, 3/7, 0/2.
    assert stats.miou(run) == pytest.approx((4 / 6 + 3 / 7 + 0) / 3)
    # The first image twice: [[6,2,0],[0,4,0],[0,0,0]]: IoU 6/8, 4/6; class 2 absent.
    assert stats.miou(run, [0, 0]) == pytest.approx((6 / 8 + 4 / 6) / 2)
    assert stats.miou(run) == tm.mean_iou(first + second)
    counts = np.array([[1.0, 2.0], [1.0, 0.0]])  # all images once; the first twice
    np.testing.assert_allclose(stats.MIOU.resampled(stats.MIOU.prepare(run), counts),
                               [(4 / 6 + 3 / 7) / 3, (6 / 8 + 4 / 6) / 2])


def test_top1_and_map_on_resampled_images_agree_with_the_metrics_module():
    rng = np.random.default_rng(2)
    labels = (rng.random((200, 6)) < 0.2).astype(np.int8)
    labels[:, 5] = 0
    labels[7, 5] = 1  # a class with one positive: absent from most resamples
    scores = np.round(rng.random((200, 6)) + 0.4 * labels, 1).astype(np.float32)  # many ties
    run = {"scores": scores, "labels": labels, "correct": labels[:, 0]}
    assert stats.mean_ap(run) == pytest.approx(tm.mean_average_precision(labels, scores), abs=1e-12)
    draws = [rng.integers(0, 200, 200) for _ in range(5)]
    for index in draws:
        assert stats.mean_ap(run, index) == pytest.approx(tm.mean_average_precision(labels[index], scores[index]),
                                                          abs=1e-12)
        assert stats.top1(run, index) == labels[index, 0].mean()
    counts = np.stack([np.bincount(index, minlength=200) for index in draws], axis=1).astype(float)
    np.testing.assert_allclose(stats.MAP.resampled(stats.MAP.prepare(run), counts),
                               [stats.mean_ap(run, index) for index in draws], atol=1e-12)
    np.testing.assert_allclose(stats.TOP1.resampled(stats.TOP1.prepare(run), counts),
                               [labels[index, 0].mean() for index in draws], atol=1e-12)


def test_forest_plot_has_one_row_per_contrast(tmp_path):
    import matplotlib.image

    rows = [("GAN vs random: top-1", stats.Gain(2.0, (0.5, 3.5), (0.8, 3.2), 0.01, (1.5, 2.5), 2000, 3, 500)),
            ("GAN vs random: mIoU", stats.Gain(0.1, (-0.5, 0.7), (-0.4, 0.6), 0.7, (0.0, 0.2), 2000, 3, 500)),
            ("GAN 5k vs 1k: mIoU", stats.Gain(-1.0, (-3.0, 1.0), (-2.6, 0.6), 0.3, (-1.0,), 2000, 3, 500))]
    path = tmp_path / "forest.png"
    figure = stats.forest_plot(rows, path, "commit abc123, configs/voc.py, checkpoints last, seeds 0-2")
    axes = figure.axes[0]
    assert [label.get_text() for label in axes.get_yticklabels()] == [label for label, _ in rows]
    texts = [text.get_text() for text in axes.texts]
    assert len(texts) == 3 and "helps" in texts[0] and "equivalent" in texts[1]
    assert "inconclusive" in texts[2] and texts[0].startswith("+2.00 [+0.50, +3.50]")
    assert any("commit abc123" in text.get_text() for text in figure.texts)
    figure = stats.forest_plot(rows, path, "caption", family=[0, 1])  # the third row is secondary
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert texts[0].endswith("(Holm p 0.02)") and texts[1].endswith("(Holm p 0.7)") and texts[2].endswith("(p 0.3)")
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 600


@pytest.mark.parametrize("task,dataset,key", [
    ("segmentation", "synthetic", "mIoU"),
    ("classification", "synthetic", "mAP"),
    ("classification", "tinyimagenet", "top1"),
])
def test_per_image_npz_reproduces_the_runs_test_score(task, dataset, key, tmp_path):
    from tests.test_tinyimagenet import make_tiny_imagenet
    from transfer.config import FinetuneConfig
    from transfer.experiment import run_finetune

    if dataset == "tinyimagenet":
        dataset = f"tinyimagenet:{make_tiny_imagenet(tmp_path)}"
    config = FinetuneConfig(task=task, init="random", dataset=dataset, out=str(tmp_path / "runs"), run_name="run",
                            image_size=32, base_filters=4, backbone="unet", dense_units=8, train_size=8, val_size=8,
                            test_size=12, batch_size=4, baseline_epochs=1, seed=3)
    result = run_finetune(config, verbose=0, log=lambda *_: None)
    run_dir = tmp_path / "runs" / "run"
    per_image = stats.load_per_image(run_dir)
    saved = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert stats.MEASURES[key](per_image) == saved[key] == result["test"][key]
    assert len(per_image[stats.MEASURES[key].keys[0]]) == saved["num_images"] and int(per_image["seed"]) == 3
    assert ("items" in per_image) == (key == "top1")  # the synthetic scenes have no names
