"""The verdict study's pre-registered rule (docs/verdict-study.md, "What counts, decided in advance") applied
to planted contrasts: reproduced, against the paper, neither, or not yet decidable."""

import argparse
import json

import pytest

from tests.figures import png_size
from transfer import verdict
from transfer.stats import Gain

PRIMARY = ("linear top-1", "CamVid mIoU, 100 %")


def gain(value, half_width):
    """A contrast's gain with symmetric intervals (the 90 % one 0.8 of the 95 %)."""
    return Gain(value, (value - half_width, value + half_width), (value - 0.8 * half_width, value + 0.8 * half_width),
                0.001 if abs(value) > half_width else 0.5, (value,), 1000, 2, 100)


def rows(h1=(3.0, 1.0), scratch=(2.0, 1.0), h2=(0.0, 0.5), h3=(0.0, 0.5), camvid_h1=None):
    planted = [("H1", PRIMARY[0], True, gain(*h1)), ("H1", PRIMARY[1], True, gain(*(camvid_h1 or h1))),
               ("gan-50k - scratch x3", PRIMARY[1], False, gain(*scratch) if scratch else None)]
    planted += [(h, label, True, gain(*value)) for h, value in (("H2", h2), ("H3", h3)) for label in PRIMARY]
    return planted


def decide(planted, holm=None):
    adjusted = {(name, label): (holm if holm is not None else g.p_value) for name, label, _, g in planted if g}
    return "\n".join(verdict._direction_lines(planted, adjusted))


def test_h1_helping_on_both_measures_and_beyond_the_scratch_control_reproduces_the_direction():
    assert "**Reproduced**" in decide(rows())


@pytest.mark.parametrize("planted, holm", [
    (rows(scratch=(0.5, 1.0)), None),  # the gain does not survive random init trained 3x longer
    (rows(), 0.2),  # H1 helps alone but not after Holm's correction
    (rows(camvid_h1=(0.5, 1.0)), None),  # inconclusive on CamVid
])
def test_a_gain_short_of_any_condition_is_not_a_reproduction(planted, holm):
    text = decide(planted, holm)
    assert "**Reproduced**" not in text and "**Neither**" in text


def test_h1_equivalent_on_camvid_with_flat_data_and_compute_contrasts_counts_against_the_paper():
    assert "**Against the paper**" in decide(rows(camvid_h1=(0.1, 0.5)))
    # one of H2 or H3 whose interval reaches +1 on a primary measure leaves it at neither
    assert "**Neither**" in decide(rows(camvid_h1=(0.1, 0.5), h3=(0.8, 0.5)))


def test_a_missing_contrast_leaves_the_direction_undecided_and_names_it():
    text = decide(rows(scratch=None))
    assert "Not yet decidable: gan-50k - scratch x3 on CamVid mIoU, 100 % not yet run." in text


def test_the_time_table_sums_each_runs_parts_with_its_kept_step_and_camvid_runs():
    times = {"pretext gan-50k seed 0": 1620.0, "probes gan-50k-seed0": 480.0, "probes gan-50k@3000-seed0": 720.0,
             "camvid gan-50k-seed0 labels10-seed0": 60.0, "camvid gan-50k@3000-seed0 labels100-seed1": 90.0,
             "camvid random-x3 labels10-seed0": 180.0, "convergence check random-seed0": 30.0}
    table = verdict.time_table(times)
    assert table == {"gan-50k-seed0": {"pretext": (1, 1620.0), "probes": (2, 1200.0), "camvid": (2, 150.0)},
                     "random-x3": {"camvid": (1, 180.0)}, "random-seed0": {"convergence check": (1, 30.0)}}
    lines = verdict._time_lines(times)
    assert "| gan-50k-seed0 | 27.0 | 20.0 (2) | 2.5 (2) |  | 49.5 |" in lines
    assert lines[-1] == "| all | 27.0 | 20.0 | 5.5 | 0.5 | 53.0 |"


def test_the_level_table_averages_each_conditions_runs_at_every_level_and_draws_them(tmp_path):
    planted = {"gan-50k-seed0": ((0.08, 0.12), (0.06, 0.10), "enc2"),
               "gan-50k-seed1": ((0.10, 0.11), (0.05, 0.09), "enc2"),
               "random-seed0": ((0.05, 0.04), (0.04, 0.03), "enc1"),
               "gan-50k@3000-seed0": ((0.0, 0.0), (0.0, 0.0), "x")}
    for name, (linear, knn, best) in planted.items():
        (tmp_path / "probes" / name).mkdir(parents=True)
        levels = {level: {"top1": t, "knn_top1": k} for level, t, k in zip(("enc1", "enc2"), linear, knn)}
        json.dump({"levels": levels, "linear_best_level": best}, open(tmp_path / "probes" / name / "probes.json", "w"))
    args = argparse.Namespace(results=str(tmp_path), out=str(tmp_path))
    lines = verdict._level_lines(args, ["random", "gan-50k", "l1-50k"])
    assert "| gan-50k | 2 | 9.0 / 5.5 | 11.5 / 9.5 | enc2, enc2 |" in lines
    assert "| random | 1 | 5.0 / 4.0 | 4.0 / 3.0 | enc1 |" in lines
    assert not any(line.startswith(("| l1-50k", "| gan-50k@3000")) for line in lines)  # not probed / not asked
    assert png_size(str(tmp_path / "levels.png")) == (1000, 400)
