"""Matplotlib figures: colorization grids (the paper's Figure 7) and loss curves (its Figure 8)."""

import csv
import io
import os

import matplotlib

matplotlib.use("Agg")  # files only: training machines have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from data.diskfull import write_atomically  # noqa: E402


def save_sample_grid(gray_rgb, colorized_rgb, original_rgb, path, title=None):
    """One row per image: grey input, colorization, original. Arrays are [N, H, W, 3] in [0, 1]."""
    rows = len(original_rgb)
    fig, axes = plt.subplots(rows, 3, figsize=(6, 2 * rows + 0.4), squeeze=False)
    for r in range(rows):
        for c, (image, name) in enumerate(
            [(gray_rgb[r], "grey input"), (colorized_rgb[r], "colorized"), (original_rgb[r], "original")]
        ):
            axes[r, c].imshow(np.clip(image, 0.0, 1.0))
            axes[r, c].axis("off")
            if r == 0:
                axes[r, c].set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save_figure(fig, path)


def _save_figure(fig, path):
    """Writes the figure whole (`write_atomically`): a full disk leaves no half image, only a `DiskFullError`."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, dpi=100, format=os.path.splitext(path)[1].lstrip(".") or "png")
    finally:
        plt.close(fig)
    write_atomically(path, buffer.getbuffer(), "the figure")


def read_csv_log(path):
    """A Keras CSVLogger file as {column: [floats]}."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = rows[0].keys() if rows else []
    return {c: [float(r[c]) for r in rows if r[c] not in ("", None)] for c in columns}


def save_loss_curves(series, path, title, ylabel="loss"):
    """Plots {label: [value per epoch]} on one axis (several runs or several losses)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in series.items():
        ax.plot(np.arange(1, len(values) + 1), values, marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save_figure(fig, path)
