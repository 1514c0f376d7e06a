import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh process: logical CPU devices must be configured before TensorFlow starts.
SCRIPT = r"""
import json, os, sys
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from cgan_colorization.engine.config import TrainConfig
from cgan_colorization.engine.distribute import make_strategy
from cgan_colorization.pretexts.gan import build as build_gan

config = TrainConfig(image_size=32, base_filters=4, batch_size=8)
rng = np.random.default_rng(0)
gray = rng.uniform(-1, 1, (24, 32, 32, 1)).astype("float32")
ab = (0.3 * np.tanh(gray + rng.normal(0, 0.1, (24, 32, 32, 2)))).astype("float32")
data = tf.data.Dataset.from_tensor_slices((gray, ab)).batch(8)  # 3 steps of global batch 8

keras.utils.set_random_seed(0)
one = build_gan(config, make_strategy("one"), dropout_rate=0.0)
mirrored = build_gan(config, make_strategy("mirrored"), dropout_rate=0.0)
nets = lambda gan: gan.generator.weights + gan.discriminator.weights
for target, value in zip(nets(mirrored), nets(one)):
    target.assign(value.numpy())
before = [w.numpy() for w in nets(one)]  # the very weights both fits start from
h_one = one.fit(data, epochs=1, verbose=0, shuffle=False).history
h_mirrored = mirrored.fit(data, epochs=1, verbose=0, shuffle=False).history
weight_diff = max(float(np.max(np.abs(a.numpy() - b.numpy()))) for a, b in zip(nets(one), nets(mirrored)))
weight_change = max(float(np.max(np.abs(a.numpy() - b))) for a, b in zip(nets(one), before))

path = os.path.join(sys.argv[1], "mirrored.weights.h5")
mirrored.save_weights(path)
restored = build_gan(config, make_strategy("one"), dropout_rate=0.0)
restored.load_weights(path)
restore_diff = max(float(np.max(np.abs(a.numpy() - b.numpy()))) for a, b in zip(nets(restored), nets(mirrored)))
path = os.path.join(sys.argv[1], "one.weights.h5")
one.save_weights(path)
back = build_gan(config, make_strategy("mirrored"), dropout_rate=0.0)
back.load_weights(path)
back_diff = max(float(np.max(np.abs(a.numpy() - b.numpy()))) for a, b in zip(nets(back), nets(one)))
print(json.dumps(dict(replicas=mirrored.distribute_strategy.num_replicas_in_sync, one=h_one,
                      mirrored=h_mirrored, weight_diff=weight_diff, weight_change=weight_change,
                      restore_diff=restore_diff, back_diff=back_diff,
                      iterations=[int(restored.g_optimizer.iterations.numpy()), int(back.d_optimizer.iterations.numpy())])))
"""


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distribute")
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(folder)], cwd=ROOT, capture_output=True,
                            text=True, timeout=600, env={"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2",
                                                         "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_mirrored_over_two_devices_matches_one_device_on_the_same_global_batch(outcome):
    assert outcome["replicas"] == 2
    for key in ("g_l1", "g_gan", "d_loss", "d_real", "d_fake"):
        assert outcome["mirrored"][key][0] == pytest.approx(outcome["one"][key][0], rel=1e-4), key
    assert outcome["weight_change"] > 1e-4  # the steps did move the weights...
    assert outcome["weight_diff"] < 1e-5  # ...and both strategies moved them alike


@pytest.mark.slow
def test_checkpoints_restore_across_strategies(outcome):
    assert outcome["restore_diff"] == 0.0 and outcome["back_diff"] == 0.0
    assert outcome["iterations"] == [3, 3]  # optimizer state travels too


def test_auto_precision_follows_the_gpus_compute_capability():
    from cgan_colorization.engine.distribute import choose_precision

    assert choose_precision("auto", []) == "float32"  # a CPU
    assert choose_precision("auto", [(9, 0)], replicas=8) == "mixed_bfloat16"  # H100 / H200
    assert choose_precision("auto", [(8, 0), (8, 6)], replicas=2) == "mixed_bfloat16"
    assert choose_precision("auto", [(7, 0)]) == "mixed_float16"  # V100: no bfloat16 tensor cores
    assert choose_precision("auto", [(8, 0), (7, 5)]) == "mixed_float16"  # the oldest GPU decides
    with pytest.raises(ValueError, match=r"compute capability 7\.0.*2 replicas.*--mixed-precision mixed_float16"):
        choose_precision("auto", [(7, 0), (7, 0)], replicas=2)
    assert choose_precision("mixed_float16", [(7, 0), (7, 0)], replicas=2) == "mixed_float16"  # asked for
    assert choose_precision("float32", [(9, 0)]) == "float32"
    with pytest.raises(ValueError, match="--mixed-precision must be one of"):
        choose_precision("float16", [])


def test_the_chief_writes_the_run_folder_and_another_worker_a_scratch_folder_removed_at_the_end(tmp_path,
                                                                                                  monkeypatch):
    from cgan_colorization.engine.distribute import worker_folder

    out = tmp_path / "run"
    out.mkdir()

    def task(index):
        cluster = {"worker": ["localhost:1", "localhost:2", "localhost:3"]}
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))

    monkeypatch.delenv("TF_CONFIG", raising=False)  # one process: it is the chief
    with worker_folder(str(out)) as folder:
        assert folder == str(out)
    task(0)
    with worker_folder(str(out)) as folder:
        assert folder == str(out)
        (out / "metrics.json").write_text("{}")
    assert (out / "metrics.json").is_file()  # the chief's files stay
    task(2)
    with worker_folder(str(out)) as folder:
        assert folder == str(out / ".worker-2")
        Path(folder).mkdir()
        (Path(folder) / "metrics.json").write_text("{}")
    assert sorted(os.listdir(out)) == ["metrics.json"]  # the scratch folder is gone, the chief's file untouched
    with pytest.raises(RuntimeError), worker_folder(str(out)) as folder:
        Path(folder).mkdir()
        raise RuntimeError("a run that stops")
    assert not (out / ".worker-2").exists()  # removed however the run ends


def test_zhangs_head_computes_in_the_mixed_dtype_and_its_loss_in_float32():
    import keras

    from cgan_colorization.pretexts import zhang
    from cgan_colorization.pretexts.classification import build_classification_generator

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        bins = zhang.ab_gamut_bins()
        net = build_classification_generator(image_size=16, base_filters=4, num_bins=len(bins), seed=0)
        head = net.get_layer("output_logits_deconv")
        assert head.compute_dtype == "bfloat16" and head.variable_dtype == "float32"
        logits = net(np.zeros((2, 16, 16, 1), np.float32))
        assert logits.dtype == "bfloat16"

        loss = zhang.class_rebalanced_loss(bins, np.ones(len(bins), np.float32))(np.zeros((2, 16, 16, 2), np.float32),
                                                                                 logits)
        assert loss.dtype == "float32" and np.isfinite(float(loss))
    finally:
        keras.mixed_precision.set_global_policy("float32")
