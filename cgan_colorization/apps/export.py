"""A trained colorizer in files that serve without this package (`export_colorizer.py`).

* The generator (normalized grey in, normalized colour out, at its training size) as a SavedModel,
  a LiteRT flatbuffer and an ONNX graph, each written by Keras' own exporters: `ExportArchive` (what
  `Model.export(format="tf_saved_model")` writes, plus a `colorize` signature for whole photos),
  `Model.export(format="litert")` and `Model.export(format="onnx")` (tf2onnx, the [export] extra).
* The U-Net encoder (the `enc*` / `bottleneck*` layers, input to the 1 x 1 bottleneck) as a `.keras`
  model of built-in Keras layers only, so `keras.saving.load_model` opens it anywhere.
"""

import importlib.metadata
import importlib.util
import json
import os
import warnings

import keras
import tensorflow as tf

from cgan_colorization.apps.inference import colorize_tensor
from cgan_colorization.constants import EXPORT_FORMATS

FILES = {"saved_model": "saved_model", "litert": "generator.tflite", "onnx": "generator.onnx"}
ENCODER_FILE = "encoder.keras"
MANIFEST_FILE = "export.json"
ONNX_MODULES = ("onnx", "tf2onnx")  # the [export] extra (onnxruntime only checks the result)


def export_colorizer(colorizer, out, formats=EXPORT_FORMATS, encoder=False):
    """Writes `colorizer` (an `inference.load_colorizer` result) into the folder `out`.

    Args:
        colorizer: The loaded colorizer; its `generator` is what the formats hold.
        out: Folder to write into (created; files of an earlier export are replaced).
        formats: Any of `EXPORT_FORMATS`; may be empty when `encoder` is set.
        encoder: Also write the U-Net encoder as `encoder.keras`.

    Returns:
        {format or "encoder" or "manifest": path written}.
    """
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown:
        raise ValueError(f"--format takes {', '.join(EXPORT_FORMATS)}, received {', '.join(unknown)}.")
    generator = _generator(colorizer) if formats else None
    if "onnx" in formats:
        check_onnx_tools()
    encoder_net = encoder_model(colorizer) if encoder else None
    os.makedirs(out, exist_ok=True)
    written = {}
    for fmt in formats:
        path = os.path.join(out, FILES[fmt])
        EXPORTERS[fmt](generator, path, colorizer)
        written[fmt] = path
    if encoder_net is not None:
        written["encoder"] = os.path.join(out, ENCODER_FILE)
        encoder_net.save(written["encoder"])
    written["manifest"] = os.path.join(out, MANIFEST_FILE)
    with open(written["manifest"], "w") as f:
        json.dump(_manifest(colorizer, written, generator, encoder_net), f, indent=2)
    return written


def _generator(colorizer):
    if colorizer.generator is None:
        name = colorizer.pretext.name if colorizer.pretext else "this"
        raise ValueError(f"a {name} colorizer's network does not map the grey input to colour by itself (its output "
                         "is decoded outside it, or it predicts classes), so it has no generator to export: give a "
                         "gan, l1 or multitask run, or export only its encoder with --format none --encoder.")
    return colorizer.generator


def check_onnx_tools():
    """A one-sentence ValueError unless the ONNX converter (the [export] extra) is installed."""
    missing = [name for name in ONNX_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(f"--format onnx needs {' and '.join(missing)}: install the [export] extra "
                         "(pip install -e '.[cpu,export]').")


def export_saved_model(generator, path, colorizer):
    """The generator's `serve` endpoint (also `serving_default`), as `Model.export` writes it, and a
    `colorize` endpoint: uint8 photo [H, W, 1 or 3] of any size -> uint8 RGB [H, W, 3] of the same size,
    the maths of `colorize.py` (`inference.colorize_tensor`)."""
    size, space = colorizer.image_size, colorizer.color_space

    def colorize(photo):
        channels = tf.shape(photo)[-1]
        check = tf.debugging.assert_equal(tf.logical_or(channels == 1, channels == 3), True,
                                          message="colorize takes a uint8 photo [H, W, C] with C = 1 or 3")
        with tf.control_dependencies([check]):
            rgb = tf.image.convert_image_dtype(photo, tf.float32)
        rgb = tf.cond(channels == 1, lambda: tf.tile(rgb, [1, 1, 3]), lambda: rgb)
        rgb = tf.ensure_shape(rgb, [None, None, 3])
        colorized = colorize_tensor(lambda grey: generator(grey, training=False), rgb, size, space)
        return tf.image.convert_image_dtype(colorized, tf.uint8, saturate=True)  # as `inference.save_rgb`

    archive = keras.export.ExportArchive()
    archive.track(generator)
    archive.add_endpoint("serve", lambda grey: generator(grey, training=False), _input_signature(generator))
    archive.add_endpoint("colorize", colorize, input_signature=[tf.TensorSpec([None, None, None], tf.uint8,
                                                                              name="photo")])
    archive.write_out(path, verbose=False)


def export_litert(generator, path, colorizer):
    """The generator as a LiteRT (TFLite) flatbuffer, one `serving_default` signature."""
    del colorizer
    generator.export(path, format="litert", verbose=False)


def export_onnx(generator, path, colorizer):
    """The generator as an ONNX graph through tf2onnx; a failed conversion is one sentence that names
    both versions (tf2onnx has often lagged TensorFlow's releases)."""
    del colorizer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # Keras' numpy-2 patch of tf2onnx touches np.object
        try:
            generator.export(path, format="onnx", verbose=False)
        except Exception as error:  # noqa: BLE001 - tf2onnx fails in many ways; each becomes one sentence
            first = (str(error).strip().splitlines() or [""])[0][:200]
            raise ValueError(f"tf2onnx {_version('tf2onnx')} could not convert the generator under TensorFlow "
                             f"{tf.__version__} ({type(error).__name__}: {first}): use --format saved_model or "
                             "litert, or a tf2onnx release that supports this TensorFlow.") from None


EXPORTERS = {"saved_model": export_saved_model, "litert": export_litert, "onnx": export_onnx}


def _input_signature(model):
    return [tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=model.inputs[0].name)]


def encoder_model(colorizer):
    """The colorizer's U-Net encoder: its input to its bottleneck layer, the layers the classifier
    transfers (`enc1_conv` ... `bottleneck_relu`), sharing the loaded weights. Only built-in Keras
    layers, so its `.keras` file loads without this package (the skip gates are decoder layers)."""
    if colorizer.bottleneck is None:
        raise ValueError("--encoder writes the U-Net encoder up to its 1 x 1 bottleneck, and this colorizer's "
                         "backbone has no such layer: export the encoder of a U-Net run.")
    network = colorizer.network
    encoder = keras.Model(network.inputs[0], network.get_layer(colorizer.bottleneck).output, name="encoder")
    foreign = [layer.name for layer in encoder.layers if not type(layer).__module__.startswith("keras.")]
    if foreign:
        raise ValueError(f"the encoder holds layers of this package ({', '.join(foreign)}), which a .keras file "
                         "cannot load without it.")
    return encoder


def _version(module):
    try:
        return importlib.metadata.version(module)
    except importlib.metadata.PackageNotFoundError:
        return None


def _manifest(colorizer, written, generator, encoder):
    """What the folder holds and where it came from, beside the files (`export.json`)."""
    files = {fmt: os.path.basename(path) for fmt, path in written.items() if fmt != "manifest"}
    manifest = {"colorizer": colorizer.checkpoint, "pretext": colorizer.pretext.name if colorizer.pretext else None,
                "image_size": colorizer.image_size, "color_space": colorizer.color_space, "files": files,
                "versions": {"tensorflow": tf.__version__, "keras": keras.__version__}}
    if generator is not None:
        manifest["generator"] = {"input": [None, *generator.input_shape[1:]],
                                 "output": [None, *generator.output_shape[1:]]}
    if encoder is not None:
        manifest["encoder"] = {"input": [None, *encoder.input_shape[1:]], "output": [None, *encoder.output_shape[1:]],
                               "layers": [layer.name for layer in encoder.layers]}
    if "onnx" in written:
        manifest["versions"]["tf2onnx"] = _version("tf2onnx")
    return manifest
