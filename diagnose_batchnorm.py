"""Why a downstream model predicts one class: train it, then score the same weights in inference mode,
with batch statistics and with re-estimated BatchNorm statistics. Run with --help for the options."""

from transfer.cli import diagnose_main

if __name__ == "__main__":
    diagnose_main()
