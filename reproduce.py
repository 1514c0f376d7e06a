"""Reproduce the paper's protocol end to end and write a report. Run with --help for the options."""

from cgan_colorization.engine import runtime

runtime.configure()

from transfer.cli import reproduce_main  # noqa: E402

if __name__ == "__main__":
    reproduce_main()
