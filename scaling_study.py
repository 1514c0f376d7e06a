"""The data-scaling study on Tiny ImageNet (transfer/scaling.py). Run with --help for the options."""

from cgan_colorization.engine import runtime

runtime.configure()

from transfer.cli import scaling_main  # noqa: E402

if __name__ == "__main__":
    scaling_main()
