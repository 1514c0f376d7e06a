"""Linear probes on the frozen features of colorizers, per encoder level. Run with --help for the options."""

from cgan_colorization.engine import runtime

runtime.configure()

from transfer.cli import features_main  # noqa: E402

if __name__ == "__main__":
    features_main()
