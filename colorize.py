"""Colorize photos with a trained colorizer. See --help."""

from cgan_colorization.engine import runtime

runtime.configure()

from cgan_colorization.apps.cli import colorize_main  # noqa: E402

if __name__ == "__main__":
    colorize_main()
