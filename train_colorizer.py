"""Train the colorization cGAN. Run with --help for the options."""

from cgan_colorization.engine import runtime

runtime.configure()

from transfer.cli import train_main  # noqa: E402

if __name__ == "__main__":
    train_main()
