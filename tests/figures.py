"""What a saved figure shows, read back from its PNG: its size in pixels, and which of matplotlib's default
colours its lines and markers are drawn in (the n series of a plot take the first n, in plotting order)."""

import matplotlib.colors
import numpy as np
from matplotlib import rcParams
from PIL import Image

GREY = 7  # C7, the grey of anti-aliased text and of reference lines: never counted as a series
MIN_PIXELS = 100  # a one-point series (a marker in the plot and one in the legend) covers about 160


def png_size(path):
    """(width, height) in pixels: figsize x dpi, which says how many panels a figure was laid out with."""
    with Image.open(path) as image:
        return image.size


def series_colours(path, min_pixels=MIN_PIXELS):
    """The indices of the default colour cycle (0 for C0, ...) that cover at least `min_pixels` pixels of the
    PNG at `path`: {0, ..., n - 1} for a plot of n series, the empty set for a blank one."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), np.int16)
    found = set()
    for index, colour in enumerate(rcParams["axes.prop_cycle"].by_key()["color"]):
        rgb = np.round(255 * np.array(matplotlib.colors.to_rgb(colour))).astype(np.int16)
        if index != GREY and (np.abs(pixels - rgb).max(axis=-1) <= 4).sum() >= min_pixels:
            found.add(index)
    return found
