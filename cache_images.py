"""Decode a photo dataset once into a cache at the training size. Run with --help for the options."""

from cgan_colorization.engine import runtime

runtime.configure()

from cgan_colorization.apps.cli import cache_main  # noqa: E402

if __name__ == "__main__":
    cache_main()
