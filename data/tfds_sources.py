"""TFDS datasets that must already be prepared: no machine is assumed to reach the internet."""

import os


def prepared_builder(name, data_dir=None, instead=""):
    """The TFDS builder of `name`, or FileNotFoundError in one sentence when it is not prepared.

    `instead` names the local-folder alternative to suggest (e.g. "--dataset coco:PATH/train2014").
    """
    import tensorflow_datasets as tfds  # slow import, only needed here

    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
        where = data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")
        raise FileNotFoundError(
            f"TFDS {name} is not prepared in {where}: run `tfds build {name}` on a machine with internet"
            + (f", or pass {instead}." if instead else " and copy its folder there.")
        )
    return builder
