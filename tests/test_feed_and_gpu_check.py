import json

import pytest

from benchmarks import gpu as gpu_check
from tests.conftest import run_script


def test_datasheet_peaks_are_found_by_device_name_and_unknown_devices_have_none():
    assert gpu_check.datasheet_peak("NVIDIA H100 PCIe")["bfloat16"] == 756e12
    assert gpu_check.datasheet_peak("NVIDIA H100 80GB HBM3")["bfloat16"] == 989.4e12
    assert gpu_check.datasheet_peak("NVIDIA H200")["float32"] == 494.7e12
    assert gpu_check.datasheet_peak("CPU (x86_64, 2 cores)") is None


def test_a_measurement_after_the_budget_is_recorded_as_skipped_and_not_run():
    runs, ran = [], []
    budget = gpu_check._Budget(0)
    entry = gpu_check._measure(runs, budget, lambda *_: None, {"batch": 64}, lambda: ran.append(1) or {})
    assert entry == {"batch": 64, "skipped": "time budget spent"} and runs == [entry] and not ran


@pytest.mark.slow
def test_benchmark_feed_reports_folder_and_cache_rates_per_core(tmp_path):
    gpu_check.synthetic_jpegs(str(tmp_path / "photos"), 12, size=(60, 80))
    out = tmp_path / "feed.json"
    result = run_script("benchmarks/benchmark.py", "--feed", f"folder:{tmp_path / 'photos'}", "--sizes", "32",
                        "--batch-size", "4", "--feed-batches", "2", "--cache-dir", str(tmp_path / "cache"),
                        "--json", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    (row,) = json.loads(out.read_text())
    assert row["image_size"] == 32 and row["cache_images"] == 12 and row["files"] == 12
    for kind in ("folder", "cache"):
        rates = row[kind]
        assert rates["images_per_s_per_core"] == pytest.approx(rates["images_per_s"] / row["host_cores"])
        assert rates["cores_for_target"] * rates["images_per_s_per_core"] >= 1000
    assert row["cache_over_folder"] == pytest.approx(row["cache"]["images_per_s"] / row["folder"]["images_per_s"])
    assert (tmp_path / "cache" / "manifest.json").is_file() and "cache/folder" in result.stdout


@pytest.mark.slow
def test_gpu_check_runs_end_to_end_on_a_cpu_at_tiny_size(tmp_path):
    out = tmp_path / "check.json"
    gpu_check.synthetic_jpegs(str(tmp_path / "photos"), 30, size=(60, 80))  # more photos than --feed-files
    precisions = ("mixed_bfloat16", "float32")  # float16 takes the same path; two keep the test short
    result = run_script("benchmarks/gpu_check.py", "--tiny", "--budget-s", "3600", "--json", str(out),
                        "--feed", f"folder:{tmp_path / 'photos'}", "--feed-files", "10",
                        "--precisions", ",".join(precisions), "--max-batch", "2",
                        timeout=900)  # the budget must not bind on a slow or shared CPU
    assert result.returncode == 0, result.stderr[-3000:]
    check = json.loads(out.read_text())
    assert not check["gpu"] and check["datasheet_peak_flops_per_s"] is None
    measured = {(r["precision"], r["xla"], r["batch"]): r for r in check["runs"] if "images_per_s" in r}
    errors = [r for r in check["runs"] if "images_per_s" not in r]
    assert not errors, errors
    # Batch 2 in each precision with and without XLA; the cap, 2, stops the search there (the doubling
    # itself: test_the_largest_batch_search).
    assert set(measured) == {(p, x, 2) for p in precisions for x in (False, True)}
    assert check["largest_batch"] == {p: 2 for p in precisions}
    flops = check["train_flops_per_image"]
    assert 1e6 < flops < 1e9
    for (precision, _, _), run in measured.items():
        peak = check["measured_matmul_peak_flops_per_s"][gpu_check.MATMUL_DTYPE[precision]]
        assert run["achieved_flops_per_s"] == pytest.approx(run["images_per_s"] * flops)
        assert run["fraction_of_measured_peak"] == pytest.approx(run["achieved_flops_per_s"] / peak)
    assert check["best"]["images_per_s"] == max(r["images_per_s"] for r in measured.values())
    feed = check["feed"]
    assert (feed["files"], feed["files_sampled"], feed["cache_images"]) == (30, 10, 10)  # never the whole folder
    assert check["finished"] and check["failures"] == []
    assert feed["cache_images"] > 0 and feed["cache"]["images_per_s"] > 0 and feed["folder"]["images_per_s"] > 0
    assert feed["cores_to_feed_best_step"] >= 1 and "best:" in result.stdout


@pytest.mark.parametrize("fits_up_to, peak, limit, tried, found", [
    (256, 10e9, 100e9, [256, 512], 256),  # the guess from memory fits; one doubling more does not
    (128, 10e9, 100e9, [256, 128, 256], 128),  # the guess does not fit: halved until it does
    (256, None, None, [64, 128, 256, 512], 256),  # no memory figures (a CPU): doubling from the first batch
    (2048, 1e9, 100e9, [1024], 1024),  # the cap
])
def test_the_largest_batch_search(fits_up_to, peak, limit, tried, found):
    calls = []

    def step(precision, xla, batch):
        calls.append(batch)
        return {"images_per_s": 1.0} if batch <= fits_up_to else {"out_of_memory": True}

    check = gpu_check.CheckConfig(batch_size=32, max_batch=1024)
    assert gpu_check._largest_batch(check, step, "float32", peak, limit, gpu_check._Budget(60)) == found
    assert calls == tried


def test_the_budget_starts_no_measurement_that_would_not_end_in_time():
    budget = gpu_check._Budget(100)
    assert budget.allows(False) and budget.allows(True)  # nothing measured yet
    budget.spent(True, 150.0)  # an XLA measurement took longer than what is left
    budget.spent(False, 1.0)
    assert not budget.allows(True) and budget.allows(False)
    budget.spent(False, 0.5)  # the longest of a kind counts, not the last
    assert budget.longest[False] == 1.0


class Killed(Exception):
    """Raised from the save after a given measurement, as a kill would stop the check."""


def test_the_check_saves_after_every_measurement_and_records_failures(tmp_path, monkeypatch):
    calls = []

    def step_rate(check, precision, xla, batch, *figures):
        calls.append((precision, xla, batch))
        if len(calls) == 2:
            raise RuntimeError("cuDNN launch failure")
        return {"images_per_s": 100.0 * len(calls)}

    def no_flops(*args):
        raise ValueError("no graph to count")

    def no_feed(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(gpu_check, "_step_rate", step_rate)
    monkeypatch.setattr(gpu_check, "train_step_flops", no_flops)
    monkeypatch.setattr(gpu_check, "folder_vs_cache", no_feed)
    check = gpu_check.CheckConfig(**gpu_check.TINY, feed="folder:photos")
    saved = []
    result = gpu_check.run_check(check, log=lambda *_: None, save=lambda r: saved.append(json.loads(json.dumps(r))))
    assert [f["part"] for f in result["failures"]] == ["FLOP count", "input pipeline"]
    assert "No space left on device" in result["failures"][1]["error"] and result["train_flops_per_image"] is None
    assert calls[0] == ("mixed_bfloat16", False, 2) and calls[1] == ("mixed_float16", False, 2)  # the useful first
    assert result["runs"][1]["error"] == "RuntimeError: cuDNN launch failure"
    assert len(calls) > 6 and result["finished"] and saved[-1] == json.loads(json.dumps(result))
    assert len(saved) >= len(result["runs"])  # saved after every measurement

    path = tmp_path / "check.json"

    def save_then_die(r):
        path.write_text(json.dumps(r))
        if len(r["runs"]) == 3:
            raise Killed

    calls.clear()
    with pytest.raises(Killed):
        gpu_check.run_check(check, log=lambda *_: None, save=save_then_die)
    on_disk = json.loads(path.read_text())
    assert len(on_disk["runs"]) == 3 and not on_disk["finished"] and on_disk["runs"][0]["images_per_s"] == 100.0
