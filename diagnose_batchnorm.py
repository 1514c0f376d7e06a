"""Why a downstream model predicts one class: train it, then score the same weights in inference mode,
with batch statistics and with re-estimated BatchNorm statistics. Run with --help for the options."""

from cgan_colorization import runtime

runtime.configure()

from transfer.bn_diagnosis import main  # noqa: E402

if __name__ == "__main__":
    main()
