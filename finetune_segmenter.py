"""Fine-tune the segmenter from the colorizer (or from scratch). Run with --help for the options."""

from cgan_colorization.engine import runtime

runtime.configure()

from transfer.cli import segmenter_main  # noqa: E402

if __name__ == "__main__":
    segmenter_main()
