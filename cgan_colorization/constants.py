"""Numbers that both the light modules (the registry and its flags, which import no TensorFlow) and
the modules that compute with them need, defined once."""

# Zhang et al. 2016: the annealed-mean temperature T, the soft encoding's nearest bins k and its
# Gaussian sigma (Lab units).
ZHANG_TEMPERATURE = 0.38
ZHANG_SOFT_K = 5
ZHANG_SIGMA = 5.0

# BatchNorm momentum of the MobileNetV2 U-Net. Keras' MobileNetV2 uses 0.999: after n steps its moving
# statistics keep 0.999^n of their initial (0, 1), 0.68 after the 390 steps of the fast segmentation
# schedule, and a from-scratch segmenter predicts background everywhere in inference mode. 0.99 forgets
# the initial values but still averages over the last ~100 steps, whose weights moved: still chance.
# 0.9 (PyTorch's default) follows the weights: 74.3 % mIoU in inference mode against 72.8 % with batch
# statistics (README, "The MobileNetV2 variant").
MOBILENET_BN_MOMENTUM = 0.9
KERAS_MOBILENET_BN_MOMENTUM = 0.999

# The generator checkpoints of a colorizer run folder. `last` is the generator at the end of training, what
# the paper and pix2pix use; `best` the one of the epoch with the lowest validation score of the pretext's
# own `monitor` (validation L1 for the GAN, which is not what the GAN optimizes: its adversarial term trades L1
# for colour, so its lowest-L1 epoch is its greyest). Every loader takes one explicitly; `last` by default.
CHECKPOINT_FILES = {"last": "generator.weights.h5", "best": "generator_best.weights.h5"}
CHECKPOINTS = tuple(CHECKPOINT_FILES)
DEFAULT_CHECKPOINT = "last"
DEFAULT_COLORIZER = "runs/colorizer"  # what train_colorizer.py writes by default, and what the loaders read
CHECKPOINT_HELP = ("which generator of a colorizer run folder to load: 'last' (the end of training, the paper's and "
                   "pix2pix's practice) or 'best' (the epoch with the lowest validation score of the pretext's own "
                   "monitor, e.g. validation L1); ignored for a weights file")

# The values of the text options that several scripts share: argparse refuses any other value before
# TensorFlow loads, and `--help` lists them.
STRATEGIES = ("auto", "one", "mirrored", "multiworker", "tpu")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
TEXT_CHOICES = {
    "strategy": STRATEGIES,
    "mixed_precision": PRECISIONS,
    "checkpoint": CHECKPOINTS,
    "resize_mode": ("resize", "crop"),
    "lr_schedule": ("constant", "cosine"),
    "monitor": ("val", "probe"),
    "color_space": ("lab", "yuv"),
    "init": ("colorization", "random"),
    "split_mode": ("paper", "official", "sequence"),
    "unfrozen_bn": ("inference", "train"),
}

GPU_STEPS_PER_EXECUTION = 16  # train steps per call into the compiled function under --steps-per-execution 0 (auto) on GPUs

# What `export_colorizer.py --format` writes the generator as (comma-separated, any subset): a SavedModel folder
# (with a `colorize` signature for whole photos), a LiteRT flatbuffer and an ONNX graph (the [export] extra).
EXPORT_FORMATS = ("saved_model", "litert", "onnx")
DEFAULT_EXPORT_FORMATS = ("saved_model", "litert")
