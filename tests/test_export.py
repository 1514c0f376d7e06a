"""export_colorizer.py / cgan-export: every format loaded back and compared with the Keras generator, the
SavedModel's `colorize` signature against colorize.py's maths, the encoder loaded where the package is not
importable, and bad input stopped in one sentence."""

import importlib.util
import json
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from cgan_colorization.apps import cli, export
from cgan_colorization.apps.inference import colorize_rgb, load_colorizer, save_rgb
from cgan_colorization.engine.config import TrainConfig
from cgan_colorization.engine.training import train
from cgan_colorization.pretexts.pretext import Colorizer
from tests.conftest import run_script

HAS_ONNX = all(importlib.util.find_spec(name) for name in (*export.ONNX_MODULES, "onnxruntime"))
FORMATS = ("saved_model", "litert", "onnx") if HAS_ONNX else ("saved_model", "litert")
SIZE = 32
# The package's own folders: the encoder must load with none of them importable.
PACKAGE_FOLDERS = ("cgan_colorization", "data", "transfer", "benchmarks")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "gan"
    train(TrainConfig(image_size=SIZE, base_filters=4, batch_size=4, epochs=1, steps_per_epoch=2, val_size=8,
                      sample_count=2, out=str(out)), verbose=0)
    return out


@pytest.fixture(scope="module")
def colorizer(run):
    return load_colorizer(str(run))


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("exported")
    written = cli.export_main(["--colorizer", str(run), "--format", ",".join(FORMATS), "--out", str(out),
                               "--encoder"])
    return {name: str(path) for name, path in written.items()}


@pytest.fixture(scope="module")
def grey_batch():
    return np.random.default_rng(0).uniform(-1.0, 1.0, (2, SIZE, SIZE, 1)).astype("float32")


def _max_difference(got, want):
    return float(np.max(np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))))


def test_the_folder_holds_each_format_and_says_what_it_came_from(exported, run):
    assert set(exported) == {*FORMATS, "encoder", "manifest"}
    manifest = json.load(open(exported["manifest"]))
    assert manifest["colorizer"]["file"] == str(run / "generator.weights.h5")
    assert manifest["colorizer"]["checkpoint"] == "last" and manifest["image_size"] == SIZE
    assert manifest["generator"] == {"input": [None, SIZE, SIZE, 1], "output": [None, SIZE, SIZE, 2]}
    assert manifest["files"]["encoder"] == "encoder.keras"


def test_the_saved_model_serves_the_generator(exported, colorizer, grey_batch):
    loaded = tf.saved_model.load(exported["saved_model"])
    assert {"serve", "serving_default", "colorize"} <= set(loaded.signatures)
    want = colorizer.generator(grey_batch, training=False).numpy()
    assert _max_difference(loaded.serve(grey_batch), want) <= 1e-5
    served = loaded.signatures["serving_default"](L=tf.constant(grey_batch))
    assert _max_difference(next(iter(served.values())), want) <= 1e-5


def _litert_interpreter(path):
    """The LiteRT interpreter TF 2.21 offers: ai_edge_litert's when installed, else tf.lite's (deprecated)."""
    if importlib.util.find_spec("ai_edge_litert"):
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter(model_path=path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "tf.lite.Interpreter is deprecated"
        return tf.lite.Interpreter(model_path=path)


def test_the_litert_model_matches_the_generator(exported, colorizer, grey_batch):
    runner = _litert_interpreter(exported["litert"]).get_signature_runner()
    (output,) = runner(L=grey_batch).values()  # a batch of 2: the batch axis stays dynamic
    assert output.shape == (2, SIZE, SIZE, 2)
    assert _max_difference(output, colorizer.generator(grey_batch, training=False)) <= 1e-3


def test_the_onnx_graph_matches_the_generator(exported, colorizer, grey_batch):
    if not HAS_ONNX:
        pytest.skip("the [export] extra (onnx, tf2onnx, onnxruntime) is not installed")
    import onnxruntime

    session = onnxruntime.InferenceSession(exported["onnx"], providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {session.get_inputs()[0].name: grey_batch})
    assert _max_difference(output, colorizer.generator(grey_batch, training=False)) <= 1e-3


def test_the_colorize_signature_is_colorize_py_on_a_photo_of_another_size(exported, colorizer, tmp_path):
    loaded = tf.saved_model.load(exported["saved_model"])
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)
    for given, rgb in ((photo, photo), (photo[..., :1], np.repeat(photo[..., :1], 3, axis=-1))):
        path = str(tmp_path / "colorized.png")
        save_rgb(colorize_rgb(colorizer, rgb / 255.0), path)  # what colorize.py writes
        want = tf.io.decode_png(tf.io.read_file(path)).numpy()
        got = loaded.colorize(tf.constant(given)).numpy()
        assert got.dtype == np.uint8 and got.shape == (45, 70, 3)
        assert np.max(np.abs(got.astype(int) - want.astype(int))) <= 1


def test_the_encoder_loads_without_the_package(exported, colorizer, grey_batch, tmp_path):
    np.save(tmp_path / "grey.npy", grey_batch)
    # An editable install can put the package on sys.path from site-packages: refuse its folders outright.
    code = f"""
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {PACKAGE_FOLDERS!r}:
            raise ImportError(f"{{name}} must not be imported")
sys.meta_path.insert(0, Refuse())
import json, keras, numpy as np
encoder = keras.saving.load_model({exported["encoder"]!r})
np.save("features.npy", encoder.predict(np.load("grey.npy"), verbose=0))
print(json.dumps({{"layers": [layer.name for layer in encoder.layers],
                  "package": sorted(m for m in sys.modules if m.split(".")[0] in {PACKAGE_FOLDERS!r})}}))
"""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["package"] == []
    assert report["layers"][0] == "L" and report["layers"][-1] == "bottleneck_relu"
    assert all(name.startswith(("enc", "bottleneck")) for name in report["layers"][1:])
    network = colorizer.network
    bottleneck = keras.Model(network.input, network.get_layer("bottleneck_relu").output)
    assert _max_difference(np.load(tmp_path / "features.npy"), bottleneck(grey_batch, training=False)) <= 1e-5


@pytest.mark.parametrize("argv, message", [
    (["--format", "saved_model,png"], "error: argument --format: takes a comma-separated subset"),
    (["--colorizer", "no/such/run"], "error: no/such/run does not exist"),
])
def test_bad_input_is_one_sentence_and_exit_status_2(argv, message, tmp_path):
    result = run_script("export_colorizer.py", *argv, "--out", str(tmp_path / "out"), timeout=120)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_what_cannot_be_exported_is_refused_before_anything_is_written(colorizer, monkeypatch, tmp_path):
    decoded = Colorizer(colorizer.network, colorizer.predict_ab, None, SIZE)  # predict_ab is not one network
    with pytest.raises(ValueError, match="no generator to export.*--format none --encoder"):
        export.export_colorizer(decoded, str(tmp_path / "a"), ("saved_model",))
    no_bottleneck = Colorizer(colorizer.network, colorizer.predict_ab, None, SIZE, bottleneck=None,
                              generator=colorizer.generator)
    with pytest.raises(ValueError, match="no such layer"):
        export.export_colorizer(no_bottleneck, str(tmp_path / "b"), ("saved_model",), encoder=True)
    monkeypatch.setattr(export, "ONNX_MODULES", ("tf2onnx_absent",))  # as without the [export] extra, installed or not
    with pytest.raises(ValueError, match=r"needs tf2onnx_absent: install the \[export\] extra"):
        export.export_colorizer(colorizer, str(tmp_path / "c"), ("saved_model", "onnx"))
    assert not any((tmp_path / name).exists() for name in "abc")
