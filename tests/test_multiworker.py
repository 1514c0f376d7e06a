"""Two real worker processes on 127.0.0.1, each with its own TF_CONFIG, as two hosts run them
(MultiWorkerMirroredStrategy over gRPC, CPU only, tiny models).

Each flow runs the script three times: in one process, as the reference (in the background); as
two workers, one of which is killed mid-run; and as the same two workers again. The reference runs
the same global batch over two replicas in one process (MirroredStrategy on two logical CPU
devices), so that its per-replica batches and dropout draws are the workers' (`test_distribute`
shows that two replicas equal one device when nothing is random).
"""

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from cgan_colorization.engine.runtime import free_local_ports
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

EXIT_BOUND_S = 120  # a worker that lost its peer must stop within this (it would otherwise hang forever)
TIMEOUT = []  # the default, no per-collective timer: the coordination service's heartbeats must find the dead peer

ONE_PROCESS = r"""
import sys
from cgan_colorization.engine import runtime
runtime.configure()
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from cgan_colorization.apps.cli import train_main
from transfer.cli import classifier_main
{"train_colorizer.py": train_main, "finetune_classifier.py": classifier_main}[sys.argv[1]](sys.argv[2:])
"""


def _env(tf_config=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


class OneProcess:
    """The reference run, started in the background (it overlaps the killed pair's idle wait)."""

    def __init__(self, script, args, logs, name="one"):
        self.err = logs / f"{name}.err"
        with open(logs / f"{name}.out", "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-c", ONE_PROCESS, script, "--strategy", "mirrored", *args],
                                         cwd=ROOT, env=_env(), stdout=out, stderr=err)

    def finish(self, timeout=300):
        try:
            assert self.proc.wait(timeout=timeout) == 0, self.err.read_text()[-3000:]
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


class Workers:
    """Two workers of one cluster running `script args --strategy multiworker`."""

    def __init__(self, script, args, logs, name):
        cluster = {"worker": [f"127.0.0.1:{port}" for port in free_local_ports(2)]}
        self.logs, self.name, self.procs = logs, name, []
        for index in range(2):
            tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
            with open(self._log(index, "out"), "w") as out, open(self._log(index, "err"), "w") as err:
                self.procs.append(subprocess.Popen(
                    [sys.executable, script, "--strategy", "multiworker", *TIMEOUT, *args], cwd=ROOT,
                    env=_env(tf_config), stdout=out, stderr=err))

    def _log(self, index, kind):
        return self.logs / f"{self.name}-w{index}.{kind}"

    def output(self, index, kind="out"):
        return self._log(index, kind).read_text()

    def wait(self, timeout=300):
        try:
            return [proc.wait(timeout=timeout) for proc in self.procs]
        finally:
            self.stop()

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def kill_one_when(self, path, index=1, timeout=180):
        """Kills worker `index` once `path` exists; returns (seconds the other took to stop, its exit code)."""
        deadline = time.time() + timeout
        while not os.path.exists(path):
            assert time.time() < deadline and all(p.poll() is None for p in self.procs), (
                f"{path} never appeared: " + self.output(0, "err")[-2000:])
            time.sleep(0.05)
        self.procs[index].send_signal(signal.SIGKILL)
        killed = time.time()
        try:
            code = self.procs[1 - index].wait(timeout=EXIT_BOUND_S)
        finally:
            self.stop()
        return time.time() - killed, code


def _record(logs, **seconds):
    """Keeps the flow's timings beside its logs (timings.json), for whoever reads them."""
    (logs / "timings.json").write_text(json.dumps({k: round(v, 1) for k, v in seconds.items()}))


def _digest(text):
    """The weights digest a worker printed at the end of its run."""
    lines = [line for line in text.splitlines() if "final weights sha256" in line]
    assert len(lines) == 1, text[-2000:]
    return lines[0].split()[-1]


def _weights(path):
    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: found.__setitem__(name, np.asarray(item)) if isinstance(item, h5py.Dataset)
                     else None)
    return found


def _assert_close(a, b, atol=1e-5):
    wa, wb = _weights(a), _weights(b)
    assert sorted(wa) == sorted(wb) and len(wa) > 10
    worst = max(float(np.max(np.abs(wa[k].astype(np.float64) - wb[k]))) if wa[k].size else 0.0 for k in wa)
    assert worst < atol, worst


def _pids_of_event_files(run_dir):
    """The process ids in the names of the TensorBoard event files under `run_dir`."""
    return {int(name.split(".")[-3]) for _, _, names in os.walk(run_dir) for name in names
            if name.startswith("events.out.tfevents")}


def _assert_one_sentence_exit(workers, index, code):
    err = workers.output(index, "err")
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert code == 2 and "Traceback" not in err, err[-3000:]
    assert last.startswith(f"error: worker {index} lost contact with the other worker(s)"), last
    assert last.endswith(".") and ". " not in last, last


COLORIZER = ["--image-size", "32", "--base-filters", "4", "--batch-size", "8", "--epochs", "2", "--steps-per-epoch",
             "6", "--val-size", "8", "--sample-count", "2", "--backup-every", "2"]


@pytest.fixture(scope="module")
def colorizer(tmp_path_factory):
    logs = tmp_path_factory.mktemp("colorizer")
    one = OneProcess("train_colorizer.py", [*COLORIZER, "--out", str(logs / "one")], logs)
    args = [*COLORIZER, "--out", str(logs / "two")]
    killed = Workers("train_colorizer.py", args, logs, "killed")
    stopped_after, code = killed.kill_one_when(logs / "two" / "backup" / "resume.json")
    one.finish()
    rerun = Workers("train_colorizer.py", args, logs, "rerun")
    started = time.time()
    codes = rerun.wait()
    _record(logs, stopped_after=stopped_after, rerun_seconds=time.time() - started)
    return dict(logs=logs, killed=killed, stopped_after=stopped_after, code=code, rerun=rerun, codes=codes)


def test_a_killed_worker_stops_the_other_with_one_sentence_in_bounded_time(colorizer):
    _assert_one_sentence_exit(colorizer["killed"], 0, colorizer["code"])
    assert colorizer["stopped_after"] < EXIT_BOUND_S


def test_rerun_workers_resume_from_the_backup_and_end_equal_to_one_process(colorizer):
    logs, rerun = colorizer["logs"], colorizer["rerun"]
    assert colorizer["codes"] == [0, 0], rerun.output(0, "err")[-3000:] + rerun.output(1, "err")[-3000:]
    assert "Resuming" in rerun.output(0) and "Resuming" in rerun.output(1)
    for index in (0, 1):  # each worker renders only its half of every global batch, not the whole stream
        assert f"worker {index}: reads only its own part of the training data" in rerun.output(index)
    summary = json.loads((logs / "two" / "train_summary.json").read_text())
    assert summary["optimizer_steps"] == 12 and summary["replicas"] == 2
    # Both workers end with the very same weights, and those of one process on the same global batch.
    assert _digest(rerun.output(0)) == _digest(rerun.output(1)) == summary["weights_sha256"]
    for name in ("generator.weights.h5", "discriminator.weights.h5"):
        _assert_close(logs / "two" / name, logs / "one" / name)
    assert json.loads((logs / "one" / "train_summary.json").read_text())["optimizer_steps"] == 12


def test_only_the_chief_writes_the_run_folder_and_the_scratch_folder_is_removed(colorizer):
    run = colorizer["logs"] / "two"
    chiefs = {colorizer["killed"].procs[0].pid, colorizer["rerun"].procs[0].pid}
    assert _pids_of_event_files(run) and _pids_of_event_files(run) <= chiefs
    assert not (run / ".worker-1").exists() and not (run / "backup").exists()
    assert {"config.json", "log.csv", "generator.weights.h5", "generator.keras"} <= set(os.listdir(run))
    assert json.loads((run / "config.json").read_text())["replicas"] == 2


CLASSIFIER = ["--init", "random", "--backbone", "unet", "--image-size", "32", "--base-filters", "4",
              "--dense-units", "16", "--train-size", "48", "--val-size", "16", "--test-size", "16",
              "--batch-size", "8", "--baseline-epochs", "2", "--save-weights"]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    logs = tmp_path_factory.mktemp("classifier")
    extra = ["--colorizer", str(logs / "no-colorizer")]
    one = OneProcess("finetune_classifier.py", [*CLASSIFIER, *extra, "--out", str(logs / "one")], logs)
    args = [*CLASSIFIER, *extra, "--out", str(logs / "two")]
    killed = Workers("finetune_classifier.py", args, logs, "killed")
    stopped_after, code = killed.kill_one_when(logs / "two" / "random-seed0" / "log.csv")
    one.finish()
    rerun = Workers("finetune_classifier.py", args, logs, "rerun")
    started = time.time()
    codes = rerun.wait()
    _record(logs, stopped_after=stopped_after, rerun_seconds=time.time() - started)
    return dict(logs=logs, killed=killed, stopped_after=stopped_after, code=code, rerun=rerun, codes=codes)


def test_finetuning_on_two_workers_equals_one_process_and_survives_a_killed_worker(classifier):
    logs, rerun = classifier["logs"], classifier["rerun"]
    _assert_one_sentence_exit(classifier["killed"], 0, classifier["code"])
    assert classifier["codes"] == [0, 0], rerun.output(0, "err")[-3000:] + rerun.output(1, "err")[-3000:]
    metrics = json.loads((logs / "two" / "random-seed0" / "metrics.json").read_text())
    assert _digest(rerun.output(0)) == _digest(rerun.output(1)) == metrics["weights_sha256"]
    _assert_close(logs / "two" / "random-seed0" / "model.weights.h5",
                  logs / "one" / "random-seed0" / "model.weights.h5")
    one = json.loads((logs / "one" / "random-seed0" / "metrics.json").read_text())
    assert metrics["test"]["mAP"] == pytest.approx(one["test"]["mAP"], abs=1e-4)
    assert not (logs / "two" / "random-seed0" / ".worker-1").exists()
    assert sorted(os.listdir(logs / "two" / "random-seed0")) == sorted(os.listdir(logs / "one" / "random-seed0"))
