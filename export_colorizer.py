"""Export a trained colorizer as SavedModel, LiteRT and/or ONNX (and its encoder as .keras). See --help."""

from cgan_colorization.engine import runtime

runtime.configure()

from cgan_colorization.apps.cli import export_main  # noqa: E402

if __name__ == "__main__":
    export_main()
