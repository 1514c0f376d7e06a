"""Fine-tune the classifier from the colorizer (or from scratch). Run with --help for the options."""

from cgan_colorization.engine import runtime

runtime.configure()

from transfer.cli import classifier_main  # noqa: E402

if __name__ == "__main__":
    classifier_main()
