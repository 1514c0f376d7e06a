"""The colorization page in the browser (Gradio, the [demo] extra). See --help."""

from cgan_colorization.engine import runtime

runtime.configure()

from cgan_colorization.apps.cli import demo_main  # noqa: E402

if __name__ == "__main__":
    demo_main()
