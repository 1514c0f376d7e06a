"""Shared test set-up: TensorFlow settings before its import, and the path of the real photos."""

from pathlib import Path

import pytest

from cgan_colorization import runtime

runtime.configure()

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"


def realdata(*parts):
    """Path under ../shared/realdata, or a skip when the folder is absent (e.g. a user's clone)."""
    path = REALDATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the real-photo tests need ../shared/realdata beside the project")
    return path
