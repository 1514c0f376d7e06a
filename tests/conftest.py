"""Shared test set-up: TensorFlow settings before its import, and the path of the real photos."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cgan_colorization.engine import runtime

runtime.configure()

ROOT = Path(__file__).resolve().parents[1]
REALDATA = ROOT.parent / "shared" / "realdata"


def realdata(*parts):
    """Path under ../shared/realdata, or a skip when the folder is absent (e.g. a user's clone)."""
    path = REALDATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the real-photo tests need ../shared/realdata beside the project")
    return path


def run_script(*args, timeout=300):
    """Runs one of the root scripts (or any file under the project) as a user would, from the
    project root; returns the finished process with its captured stdout and stderr."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


# The files that take longest (minutes each on a 2-core CPU), started first: with two pytest-xdist workers
# (setup.cfg) a long file that is handed out last runs alone at the end while the other core idles.
LONG_FILES = ("test_reproduce.py", "test_transfer_scripts.py", "test_training.py", "test_mobilenet_variant.py",
              "test_multiworker.py", "test_scaling.py", "test_feed_and_gpu_check.py", "test_batchnorm.py",
              "test_checkpoints.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return LONG_FILES.index(name) if name in LONG_FILES else len(LONG_FILES)

    items.sort(key=rank)  # stable: each file's own order is kept
