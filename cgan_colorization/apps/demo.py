"""The colorization page (`cgan-demo`, `demo.py`): upload a photo or pick an example, and see the grey
input, the colorization and the original side by side at the photo's own resolution, with PSNR and
SSIM against the original when the photo is in colour, and several stochastic colorizations (dropout
kept on at inference, pix2pix's practice). Any colorizer run folder under `runs/` can be chosen.

Every request is checked here, not by the page: a file that is not an image, too large, or too small
gets a one-sentence message on the page and the server keeps serving. Gradio (the optional `[demo]`
extra) is imported only when the page is built.
"""

import os
import tempfile
import threading

import numpy as np
import tensorflow as tf

from cgan_colorization import pretrained
from cgan_colorization.apps.inference import colorize_rgb, describe_checkpoint, load_colorizer
from cgan_colorization.constants import CHECKPOINT_FILES, CHECKPOINTS, DEFAULT_CHECKPOINT, DEFAULT_COLORIZER
from cgan_colorization.engine.config import load_config
from data.decode import is_greyscale, load_rgb
from data.color import join_rgb, split_rgb

MAX_FILE_MB = 25  # larger uploads are refused (Gradio's own limit, and this module's)
MAX_PIXELS = 40_000_000  # a decoded photo above this would take gigabytes on the server
MIN_SIDE = 8  # below this a photo has no colour to see
MAX_SAMPLES = 4
SSIM_MIN_SIDE = 11  # tf.image.ssim's 11 x 11 window
API_NAME = "colorize"


def find_runs(runs_dir):
    """Colorizer run folders under `runs_dir` (any depth): a `config.json` whose pretext colorizes and
    a generator file, sorted."""
    from cgan_colorization.engine.config import pretext_of

    found = []
    for root, dirs, files in os.walk(runs_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if "config.json" in files and any(name in files for name in CHECKPOINT_FILES.values()):
            try:
                if pretext_of(load_config(root)).colorizes:
                    found.append(root)
            except (ValueError, TypeError, KeyError, OSError):  # not a colorizer's run folder
                continue
    return sorted(found)


class Colorizers:
    """The loaded colorizers, one per (run folder, checkpoint, dropout at inference), loaded on first use."""

    def __init__(self):
        self._loaded, self._lock = {}, threading.Lock()

    def get(self, run, checkpoint, dropout=False):
        key = (run, checkpoint, dropout)
        with self._lock:
            if key not in self._loaded:
                colorizer = load_colorizer(run, inference_dropout=dropout, checkpoint=checkpoint)
                if colorizer.pretext is not None and not colorizer.pretext.colorizes:
                    raise ValueError(f"{run} is a {colorizer.pretext.name} run: it predicts classes, not colour.")
                self._loaded[key] = colorizer
            return self._loaded[key]


def read_photo(path):
    """The photo at `path` as sRGB float [H, W, 3], or a ValueError whose text is shown on the page."""
    if not path or not os.path.isfile(path):
        raise ValueError("Upload a photo first.")
    name = os.path.basename(path)
    if os.path.getsize(path) > MAX_FILE_MB * 2**20:
        raise ValueError(f"{name} is larger than {MAX_FILE_MB} MB: upload a smaller photo.")
    try:
        from PIL import Image

        with Image.open(path) as header:  # reads the size only, so a huge photo is refused before decoding
            width, height = header.size
    except Exception:  # noqa: BLE001 - PIL cannot even read a header: fall through to the decoder's verdict
        width = height = None
    if width and width * height > MAX_PIXELS:
        raise ValueError(f"{name} has {width} x {height} pixels, more than {MAX_PIXELS / 1e6:.0f} million: "
                         "upload a smaller photo.")
    try:
        rgb = load_rgb(path).numpy()
    except Exception:  # noqa: BLE001 - any decoder failure means "not an image"
        raise ValueError(f"{name} is not a readable image (JPEG, PNG, BMP or GIF).") from None
    if min(rgb.shape[:2]) < MIN_SIDE:
        raise ValueError(f"{name} is {rgb.shape[1]} x {rgb.shape[0]} pixels: upload a photo of at least "
                         f"{MIN_SIDE} x {MIN_SIDE}.")
    return rgb


def scores(colorized, original):
    """PSNR and SSIM (sRGB, max_val 1) of the colorization against the original, and of the grey
    baseline (the photo's lightness with no colour), as {name: value}; SSIM is left out below 11 px."""
    colorized, original = tf.constant(colorized), tf.constant(original)
    grey = grey_rgb(original)
    out = {"psnr": float(tf.image.psnr(colorized, original, 1.0)), "psnr_grey": float(tf.image.psnr(grey, original, 1.0))}
    if min(original.shape[:2]) >= SSIM_MIN_SIDE:
        out.update(ssim=float(tf.image.ssim(colorized, original, 1.0)), ssim_grey=float(tf.image.ssim(grey, original, 1.0)))
    return out


def grey_rgb(rgb):
    """The grey baseline of every score here: the photo's Lab lightness with ab = 0."""
    lightness, ab = split_rgb(tf.constant(rgb, tf.float32), "lab")
    return join_rgb(lightness, tf.zeros_like(ab), "lab")


def to_uint8(rgb):
    return np.round(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)


def colorize_photo(path, run, checkpoint, samples, colorizers):
    """What the page shows for one request: (grey input, colorization, original, stochastic samples,
    message). On bad input the images are None and the message says why, in one sentence."""
    try:
        if checkpoint not in CHECKPOINTS:
            raise ValueError(f"checkpoint must be one of {CHECKPOINTS}, received {checkpoint!r}.")
        samples = int(samples or 0)
        if not 0 <= samples <= MAX_SAMPLES:
            raise ValueError(f"samples must be between 0 and {MAX_SAMPLES}, received {samples}.")
        rgb = read_photo(path)
        colorizer = colorizers.get(run, checkpoint)
    except (FileNotFoundError, ValueError) as error:
        return None, None, None, [], f"**Error:** {error}"
    colorized = colorize_rgb(colorizer, rgb)
    grey = grey_rgb(rgb).numpy()
    stochastic = []
    if samples:
        noisy = colorizers.get(run, checkpoint, dropout=True)
        stochastic = [(to_uint8(colorize_rgb(noisy, rgb)), f"sample {i + 1}") for i in range(samples)]
    height, width = rgb.shape[:2]
    lines = [f"**{os.path.basename(path)}**, {width} x {height} px; colorizer `{run}`, "
             f"{describe_checkpoint(colorizer.checkpoint)}."]
    if is_greyscale(tf.constant(rgb)):
        lines.append("A greyscale photo: there is no colour to compare the colorization with.")
    else:
        s = scores(colorized, rgb)
        ssim = (f"; SSIM {s['ssim']:.3f} (grey {s['ssim_grey']:.3f})" if "ssim" in s else
                f"; SSIM needs at least {SSIM_MIN_SIDE} px a side")
        lines.append(f"Against the original: PSNR {s['psnr']:.2f} dB (grey baseline {s['psnr_grey']:.2f} dB){ssim}.")
    return to_uint8(grey), to_uint8(colorized), to_uint8(rgb), stochastic, "\n\n".join(lines)


# Real photos that scikit-image ships (public domain or CC0, see skimage.data), the page's examples.
SKIMAGE_EXAMPLES = ("astronaut", "coffee", "chelsea", "rocket")


def example_photos(folder, count=3, size=192):
    """A few example photos for the page in `folder`: real photos from scikit-image's `skimage.data`
    where it is installed (the [demo] extra), else scenes rendered from the embedded synthetic data."""
    os.makedirs(folder, exist_ok=True)
    try:
        from skimage import data as photos
    except ImportError:
        photos = None
    if photos is not None:
        paths = []
        for name in SKIMAGE_EXAMPLES[:count]:
            path = os.path.join(folder, f"{name}.png")
            tf.io.write_file(path, tf.io.encode_png(np.asarray(getattr(photos, name)(), np.uint8)[..., :3]))
            paths.append(path)
        return paths
    from data.synthetic import render_scenes

    scenes = render_scenes(tf.range(count, dtype=tf.int64), seed=11, image_size=size)["image"]
    paths = []
    for i, rgb in enumerate(np.asarray(scenes)[:count]):
        path = os.path.join(folder, f"example_{i + 1}.png")
        tf.io.write_file(path, tf.io.encode_png(to_uint8(rgb)))
        paths.append(path)
    return paths


def build_app(default_run, runs, checkpoint=DEFAULT_CHECKPOINT, examples=(), colorizers=None):
    """The Gradio page; `runs` are the run folders offered besides `default_run`."""
    import gradio as gr

    colorizers = colorizers or Colorizers()
    choices = sorted(set(runs) | {default_run}) + [name for name in shipped_colorizers() if name != default_run]
    with gr.Blocks(title="cGAN colorization") as app:
        gr.Markdown("# Colorization\nUpload a photo (or pick an example): the colorizer sees only its lightness.")
        with gr.Row():
            photo = gr.File(label="photo", file_types=["image"], type="filepath")
            with gr.Column():
                run = gr.Dropdown(choices, value=default_run, label="colorizer run folder")
                which = gr.Radio(list(CHECKPOINTS), value=checkpoint, label="checkpoint")
                samples = gr.Slider(0, MAX_SAMPLES, value=0, step=1,
                                    label="stochastic colorizations (dropout at inference)")
                button = gr.Button("Colorize", variant="primary")
        message = gr.Markdown(elem_id="message", label="scores")
        with gr.Row():
            grey = gr.Image(label="grey input", type="numpy", format="png", elem_id="grey")
            colour = gr.Image(label="colorization", type="numpy", format="png", elem_id="colorized")
            original = gr.Image(label="original", type="numpy", format="png", elem_id="original")
        gallery = gr.Gallery(label="stochastic colorizations", columns=MAX_SAMPLES, format="png")
        if examples:
            gr.Examples([[path] for path in examples], inputs=[photo], label="examples")
        button.click(lambda *a: colorize_photo(*a, colorizers), [photo, run, which, samples],
                     [grey, colour, original, gallery, message], api_name=API_NAME)
    return app


def shipped_colorizers():
    """`pretrained:NAME` of every colorizer shipped with the package whose weights are installed."""
    names = []
    for name in pretrained.SHIPPED:
        try:
            pretrained.folder(pretrained.PREFIX + name)
        except (ValueError, FileNotFoundError):
            continue
        names.append(pretrained.PREFIX + name)
    return names


def serve(colorizer, runs_dir="runs", checkpoint=DEFAULT_CHECKPOINT, host="127.0.0.1", port=7860, share=False):
    """Builds the page and serves it until interrupted. Without the default run folder, the page starts
    on the first shipped colorizer."""
    if colorizer == DEFAULT_COLORIZER and not os.path.exists(colorizer) and shipped_colorizers():
        colorizer = shipped_colorizers()[0]
        print(f"no colorizer in {DEFAULT_COLORIZER}: the page starts with the shipped {colorizer}", flush=True)
    colorizers = Colorizers()
    colorizers.get(colorizer, checkpoint)  # a missing or wrong colorizer stops here, in one sentence
    examples = example_photos(tempfile.mkdtemp(prefix="cgan-demo-"))
    app = build_app(colorizer, find_runs(runs_dir) if os.path.isdir(runs_dir) else [], checkpoint, examples, colorizers)
    print(f"serving the colorization page of {colorizer} on http://{host}:{port}", flush=True)
    app.launch(server_name=host, server_port=port, share=share, max_file_size=f"{MAX_FILE_MB}mb",
               allowed_paths=[os.path.dirname(examples[0])], show_error=False)
