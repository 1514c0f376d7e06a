"""Score a trained colorizer (PSNR/SSIM, Zhang's ab error AuC and CIEDE2000 against the grey baseline). See --help."""

from cgan_colorization.engine import runtime

runtime.configure()

from cgan_colorization.apps.cli import evaluate_main  # noqa: E402

if __name__ == "__main__":
    evaluate_main()
