"""The colorization page: served for real by `demo.py`, driven through `gradio_client` and in a real
headless browser (Chromium), with bad input answered on the page while the server keeps serving."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, run_script

pytest.importorskip("gradio", reason="the page needs the [demo] extra (gradio)")
pytestmark = pytest.mark.slow


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A tiny colorizer, and the page serving it from a `demo.py` process: (url, run folder, photos)."""
    root = tmp_path_factory.mktemp("demo")
    run = root / "runs" / "colorizer"
    trained = run_script("train_colorizer.py", "--image-size", "32", "--base-filters", "4", "--epochs", "1",
                         "--steps-per-epoch", "2", "--val-size", "8", "--out", str(run))
    assert trained.returncode == 0, trained.stderr
    rng = np.random.default_rng(0)
    photos = root / "photos"
    photos.mkdir()
    Image.fromarray((rng.random((45, 70, 3)) * 255).astype("uint8")).save(photos / "colour.jpg")
    Image.fromarray((rng.random((45, 70)) * 255).astype("uint8"), "L").save(photos / "grey.png")
    Image.fromarray((rng.random((45, 70, 4)) * 255).astype("uint8"), "CMYK").save(photos / "cmyk.jpg")
    Image.new("RGB", (8000, 6000)).save(photos / "huge.png")  # 48 megapixels in a small file
    (photos / "notes.jpg").write_text("not an image")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "demo.py", "--colorizer", str(run), "--runs-dir", str(root / "runs"),
                               "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                server.kill()
                pytest.fail(f"the page did not come up: {server.stdout.read()[-2000:]}")
            time.sleep(1)
    yield url, str(run), photos
    server.terminate()
    server.wait(timeout=30)


def test_the_page_colorizes_at_the_photos_size_and_answers_bad_input(served):
    from gradio_client import Client, handle_file

    url, run, photos = served
    client = Client(url, verbose=False)

    def colorize(name, samples=0):
        return client.predict(handle_file(str(photos / name)), run, "last", samples, api_name="/colorize")

    grey, colour, original, samples, message = colorize("colour.jpg", samples=2)
    shown = [np.asarray(Image.open(path)) for path in (grey, colour, original)]
    assert [image.shape for image in shown] == [(45, 70, 3)] * 3  # the photo's own resolution
    assert np.abs(shown[0][..., 0].astype(int) - shown[0][..., 2]).max() <= 2  # the grey input is grey
    assert len(samples) == 2 and "PSNR" in message and "SSIM" in message and "last (epoch 1)" in message
    for name, expected in (("notes.jpg", "is not a readable image"), ("huge.png", "more than 40 million")):
        *images, samples, message = colorize(name)
        assert images == [None, None, None] and message.startswith("**Error:**") and expected in message
    *images, _, message = colorize("grey.png")
    assert images[1] and "greyscale photo" in message and "PSNR" not in message
    *images, _, message = colorize("cmyk.jpg")  # converted to RGB; the server kept serving after the errors
    assert np.asarray(Image.open(images[1])).shape == (45, 70, 3) and "PSNR" in message


def test_a_browser_uploads_a_photo_and_sees_it_colorized(served, tmp_path):
    browser, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not (browser and driver):
        pytest.skip("no headless browser: apt-get install -y chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (the test extra)")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    url, _, photos = served
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1100"):
        options.add_argument(flag)
    page = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver), options=options)
    try:
        page.get(url)
        wait = WebDriverWait(page, 120)
        upload = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "input[type=file]")))
        upload.send_keys(str(photos / "colour.jpg"))
        wait.until(lambda p: "colour.jpg" in p.page_source)  # the file component lists the upload
        page.find_element(By.XPATH, "//button[normalize-space()='Colorize']").click()
        image = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#colorized img")))
        wait.until(lambda p: "PSNR" in p.find_element(By.ID, "message").text)
        assert image.get_attribute("src")
        screenshot = os.environ.get("CGAN_DEMO_SCREENSHOT") or str(tmp_path / "demo.png")
        page.save_screenshot(screenshot)
        assert Image.open(screenshot).size[0] >= 1000
    finally:
        page.quit()


def test_the_examples_are_real_photos_and_shipped_colorizers_are_offered(tmp_path, monkeypatch):
    from cgan_colorization import pretrained
    from cgan_colorization.apps import demo

    pytest.importorskip("skimage", reason="the real example photos come from scikit-image (the demo extra)")
    paths = demo.example_photos(str(tmp_path / "examples"))
    assert [os.path.basename(p) for p in paths] == ["astronaut.png", "coffee.png", "chelsea.png"]
    assert np.asarray(Image.open(paths[1])).shape == (400, 600, 3)
    monkeypatch.setattr(pretrained, "HERE", str(tmp_path))
    monkeypatch.setattr(pretrained, "SHIPPED", {"toy": "a test colorizer", "absent": "not installed"})
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "generator.weights.h5").write_bytes(b"")
    assert demo.shipped_colorizers() == ["pretrained:toy"]  # only those whose weights are installed
