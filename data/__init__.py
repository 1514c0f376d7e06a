"""Input pipelines: the pretext's photo sources and caches, and the labelled sources of the downstream tasks."""

# The downstream tasks, in the order every table gives them (importable without TensorFlow).
TASKS = ("classification", "segmentation")
