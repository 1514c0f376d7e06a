"""One process per run folder (`cgan_colorization.engine.runlock`), and a full disk (`data.diskfull`): a second
process is refused in one sentence that names the first, a lock left by a dead process is taken over
with a warning, and a write that finds no space left ends the run in one sentence, keeps the previous
backup readable and leaves no partial file, so that a rerun resumes once there is space again.

The full disk is real where a small tmpfs can be mounted (as root); elsewhere those tests are skipped
and the others make the writes raise ENOSPC as a full disk does.
"""

import errno
import json
import os
import re
import shutil
import socket
import subprocess
import sys

import keras
import pytest

from cgan_colorization.apps.cli import cache_main
from cgan_colorization.engine import callbacks as cb
from cgan_colorization.engine import runlock
from cgan_colorization.engine.training import train
from data import cache as image_cache
from data import diskfull
from data.diskfull import DiskFullError, is_disk_full
from data.pipeline import parse_dataset
from tests.conftest import ROOT, run_script
from tests.test_cache import _photos
from tests.test_checkpoints import _config
from transfer.config import FinetuneConfig
from transfer.experiment import run_finetune

HOLDER = "import sys, time\nfrom cgan_colorization.engine import runlock\nwith runlock.hold(sys.argv[1]):\n" \
         "    print('held', flush=True)\n    time.sleep(300)\n"

# train_colorizer.py, with the disk made full just before its `at`-th backup: a real full disk (a tmpfs
# filled up) when a filler path is given, else writes that raise ENOSPC from then on.
FULL_AT_BACKUP = r"""
import sys
from cgan_colorization.engine import runtime
runtime.configure()
from cgan_colorization.apps.cli import train_main
from cgan_colorization.engine import callbacks as cb
from data import diskfull
from tests.test_run_lock import fill_disk, no_space_after

at, filler = int(sys.argv[1]), sys.argv[2]
save, count = cb.StepBackupAndRestore._save_model, [0]

def save_on_a_full_disk(self):
    count[0] += 1
    if count[0] == at:
        if filler:
            fill_disk(filler)
        else:
            diskfull.open = no_space_after(1000)
    save(self)

cb.StepBackupAndRestore._save_model = save_on_a_full_disk
train_main(sys.argv[3:])
"""


def fill_disk(path):
    """Writes zeros to `path` until its disk is full."""
    with open(path, "wb", buffering=0) as f:
        for size in (1 << 16, 1 << 12, 1 << 9):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as error:
                assert error.errno == errno.ENOSPC, error


class _Filling:
    """A file opened for writing that takes `room` bytes, then fails as a full disk does."""

    def __init__(self, file, room):
        self._file, self._room = file, room

    def write(self, data):
        data = memoryview(data).cast("B")
        if len(data) > self._room:
            self._file.write(data[:self._room])
            self._room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._file.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()

    def __getattr__(self, name):
        return getattr(self._file, name)


def no_space_after(room):
    """An `open` whose files opened for writing take `room` bytes, then raise ENOSPC."""
    def fake_open(path, mode="r", *args, **kwargs):
        file = open(path, mode, *args, **kwargs)
        return _Filling(file, room) if "w" in mode else file
    return fake_open


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MB tmpfs under tmp_path (needs root), unmounted afterwards."""
    path = tmp_path / "disk"
    path.mkdir()
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a real full disk needs a tmpfs, which only root can mount")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(path)], capture_output=True,
                             text=True)
    if mounted.returncode:
        pytest.skip(f"mount -t tmpfs failed here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def holder(tmp_path):
    """Start `holder(folder)`: another process (not this one) that holds the lock of `folder`."""
    started = []

    def start(folder):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def _refusal(folder, pid, flag):
    return re.compile(rf"{re.escape(str(folder))} is in use by another run: pid {pid} on "
                      rf"{re.escape(socket.gethostname())} since \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d \(\d+ min ago\), "
                      rf"running .*; wait for it to end, or pass another {re.escape(flag)}\.")


def test_the_finetuning_and_the_cache_refuse_a_folder_that_another_process_holds(holder, tmp_path, capsys):
    run = tmp_path / "out" / "random-seed0"
    first = holder(run)
    config = FinetuneConfig(task="classification", init="random", out=str(tmp_path / "out"))
    with pytest.raises(runlock.RunLocked) as refused:
        run_finetune(config, verbose=0, log=lambda *_: None)
    assert _refusal(run, first.pid, "--out or --run-name").fullmatch(str(refused.value))
    assert os.listdir(run) == [runlock.LOCK_FILE]  # refused before anything was written

    photos, folder = _photos(tmp_path / "photos", count=4), tmp_path / "cache"
    second = holder(folder)
    with pytest.raises(SystemExit) as stopped:
        cache_main(["--dataset", f"folder:{photos}", "--cache", str(folder), "--image-size", "16"])
    err = capsys.readouterr().err.strip()
    assert stopped.value.code == 2 and "\n" not in err and err.startswith("error: ")
    assert _refusal(folder, second.pid, "--cache").fullmatch(err[len("error: "):])
    assert os.listdir(folder) == [runlock.LOCK_FILE]


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_one_line_warning(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / runlock.LOCK_FILE).write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid,
                                                         "since": 0, "command": "train_colorizer.py --out run"}))
    lines = []
    with runlock.hold(folder, log=lines.append):
        holder = json.loads((folder / runlock.LOCK_FILE).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    assert len(lines) == 1 and "\n" not in lines[0]
    assert lines[0].startswith(f"warning: taking over {folder}, whose lock was left by pid {dead.pid} on ")
    assert lines[0].endswith("running train_colorizer.py --out run, which is gone.")
    assert os.listdir(folder) == []  # the lock file goes with the run that held it


def test_without_flock_a_live_pid_on_this_host_still_holds_the_folder(holder, tmp_path, monkeypatch):
    monkeypatch.setattr(runlock, "_flock", lambda fd: None)  # a filesystem without flock
    folder = tmp_path / "run"
    alive = holder(folder)
    with pytest.raises(runlock.RunLocked, match=f"pid {alive.pid} on"):
        with runlock.hold(folder):
            pass
    alive.kill()
    alive.wait()
    lines = []
    with runlock.hold(folder, log=lines.append):
        pass
    assert len(lines) == 1 and f"pid {alive.pid}" in lines[0] and lines[0].endswith("which is gone.")


def test_a_failed_run_releases_its_lock_and_leaves_no_empty_folder(tmp_path):
    folder = tmp_path / "new"
    with pytest.raises(KeyError):
        with runlock.hold(folder):
            raise KeyError("the run failed")
    assert not folder.exists()
    with runlock.hold(folder):  # free again
        (folder / "log.csv").write_text("epoch\n")
    assert os.listdir(folder) == ["log.csv"]


def test_a_weights_file_that_finds_the_disk_full_leaves_no_partial_file_and_the_old_one_whole(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, name="dense")])
    path = str(tmp_path / "generator.weights.h5")
    cb.save_model_file(model, path)
    before = open(path, "rb").read()
    model.layers[0].kernel.assign(model.layers[0].kernel + 1.0)
    monkeypatch.setattr(diskfull, "open", no_space_after(100), raising=False)
    with pytest.raises(DiskFullError) as full:
        cb.save_model_file(model, path, "the generator weights")
    assert str(full.value) == (f"the generator weights {path} could not be written: no space is left on its disk (it "
                               f"needs about {diskfull.size_text(len(before))}); free some space and run the same "
                               "command again.")
    assert os.listdir(tmp_path) == ["generator.weights.h5"] and open(path, "rb").read() == before
    monkeypatch.undo()
    fresh = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, name="dense")])
    fresh.load_weights(path)  # what save_model_file writes is what Keras reads
    # h5py's own errors carry no errno: their text says it.
    assert is_disk_full(RuntimeError("Can't decrement id ref count (file write failed: errno = 28, error message = "
                                     "'No space left on device')"))
    assert not is_disk_full(RuntimeError("Can't open file"))


@pytest.mark.parametrize("disk", ["tmpfs", "raised"])
def test_a_cache_build_that_finds_the_disk_full_keeps_its_shards_and_finishes_when_rerun(disk, tmp_path, request,
                                                                                        monkeypatch):
    source = parse_dataset(f"folder:{_photos(tmp_path / 'photos', count=6)}", val_fraction=0.2, seed=0)
    root = request.getfixturevalue("small_disk") if disk == "tmpfs" else tmp_path
    path = root / "cache"

    def fill(split, index):
        if (split, index) == ("train", 0):
            fill_disk(root / "filler") if disk == "tmpfs" else \
                monkeypatch.setattr(image_cache, "open", no_space_after(2000), raising=False)

    build = dict(image_size=16, source=source.spec, files_per_shard=3, log=lambda *_: None)
    with pytest.raises(DiskFullError) as full:
        image_cache.build_cache(path, {"train": source.train_paths, "val": source.val_paths}, on_shard=fill, **build)
    assert re.fullmatch(rf"the cache shard {re.escape(str(path))}/train-00001\.f16 could not be written: no space is "
                        r"left on its disk \(it needs about [\d.]+ KB\); the build stopped and keeps its 1 complete "
                        r"shard\(s\): free up to [\d.]+ KB \(the rest of the build\) and run the same command to "
                        r"finish it\.", str(full.value)), str(full.value)
    assert sorted(name for name in os.listdir(path) if name.startswith("train")) == ["train-00000.f16",
                                                                                     "train-00000.json"]
    monkeypatch.undo()
    if disk == "tmpfs":
        os.remove(root / "filler")
    cache = image_cache.build_cache(path, {"train": source.train_paths, "val": source.val_paths}, **build)
    assert cache.manifest["resumed_shards"] == 1 and image_cache.verify_cache(cache)


@pytest.mark.slow
def test_a_second_training_process_on_a_run_folder_is_refused_naming_the_first(holder, tmp_path):
    out = tmp_path / "run"
    first = holder(out)
    second = run_script("train_colorizer.py", "--out", str(out), "--image-size", "32", "--base-filters", "4",
                        "--epochs", "1", "--steps-per-epoch", "2", timeout=300)
    last = second.stderr.strip().splitlines()[-1]
    assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr[-3000:]
    assert last.startswith("error: ") and _refusal(out, first.pid, "--out").fullmatch(last[len("error: "):]), last
    assert os.listdir(out) == [runlock.LOCK_FILE]


@pytest.mark.slow
@pytest.mark.parametrize("disk", ["tmpfs", "raised"])
def test_a_full_disk_during_a_backup_ends_the_run_in_one_sentence_and_the_rerun_resumes(disk, tmp_path, request,
                                                                                         capsys):
    root = request.getfixturevalue("small_disk") if disk == "tmpfs" else tmp_path
    config = _config(root / "run")  # 3 epochs of 3 steps, a backup every 2 steps and at each epoch's end
    args = ["--image-size", "32", "--base-filters", "4", "--batch-size", "4", "--epochs", "3", "--steps-per-epoch",
            "3", "--val-size", "8", "--sample-count", "2", "--backup-every", "2", "--out", config.out]
    filler = str(root / "filler") if disk == "tmpfs" else ""
    stopped = run_script("-c", FULL_AT_BACKUP, "2", filler, *args, timeout=300)
    backup = os.path.join(config.out, "backup")
    last = stopped.stderr.strip().splitlines()[-1]
    assert stopped.returncode == 2, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr and "Segmentation" not in stopped.stderr, stopped.stderr[-3000:]
    assert re.fullmatch(rf"error: the backup {re.escape(backup)}/backup-000002\.weights\.h5 could not be written: no "
                        r"space is left on its disk \(it needs about 1\.\d MB\); the run stopped and keeps its last "
                        rf"backup {re.escape(backup)}/backup-000001\.weights\.h5 \(epoch 1, step 2\): free space and "
                        "run the same command to resume from it.", last), last
    assert sorted(os.listdir(backup)) == ["backup-000001.weights.h5", "resume.json"]  # no partial file
    assert cb.usable_backup(backup)["weights"] == "backup-000001.weights.h5"
    assert cb._readable_weights(os.path.join(backup, "backup-000001.weights.h5"))
    assert not os.path.exists(os.path.join(config.out, runlock.LOCK_FILE))

    if disk == "tmpfs":
        os.remove(filler)  # the space is back
    capsys.readouterr()
    train(config, verbose=0)
    assert f"Resuming {config.out} at epoch 1, step 2 of 3." in capsys.readouterr().out
    summary = json.loads(open(os.path.join(config.out, "train_summary.json")).read())
    assert summary["optimizer_steps"] == 9 and not os.path.exists(backup)
