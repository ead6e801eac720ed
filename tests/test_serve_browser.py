"""The page of `unmask serve` in real headless Chromium: drop an image, see its verdict and heat map.

Uses Debian's chromium and chromedriver (``.ci/run`` installs them) through Selenium with the driver
path given explicitly, so Selenium Manager never downloads anything. Skips only where chromium or
chromedriver is absent. ``UNMASK_SERVE_SCREENSHOT=docs/img/serve.png`` keeps the screenshot.
"""
from __future__ import annotations

import base64
import os
import shutil
import time

import numpy as np
import pytest
from PIL import Image

from tests.corpus import png_bytes
from tests.serve_helpers import ServerProc

CHROMIUM = next((p for p in (shutil.which("chromium"), "/usr/bin/chromium", shutil.which("chromium-browser"))
                 if p and os.path.exists(p)), None)
CHROMEDRIVER = next((p for p in (shutil.which("chromedriver"), "/usr/bin/chromedriver") if p and os.path.exists(p)),
                    None)
pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="needs Debian's chromium and chromedriver (apt-get install chromium "
                                       "chromium-driver; .ci/run installs them)")

DROP_JS = """
const [b64, name] = arguments;
const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
const dt = new DataTransfer();
dt.items.add(new File([bytes], name, {type: "image/png"}));
const zone = document.getElementById("drop");
for (const type of ["dragenter", "dragover", "drop"]) {
  zone.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true}));
}
"""


def _driver(width: int, height: int):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              f"--window-size={width},{height}", "--hide-scrollbars", "--force-device-scale-factor=1"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


def _wait(fn, what: str, bound: float = 60.0):
    """Poll ``fn`` until truthy (a bound on a broken page, not a timing assertion)."""
    end = time.monotonic() + bound
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"the page never showed {what}")


def _mosaic(real_images, fake_images) -> bytes:
    """A 112x168 grey mosaic of real (left) and generated (right) 28-px images: several tiles."""
    real, fake = real_images[:12, 0].numpy(), fake_images[:12, 0].numpy()
    rows = [np.concatenate([real[r * 3 + c] if c < 3 else fake[r * 3 + c - 3] for c in range(6)], axis=1)
            for r in range(4)]
    return png_bytes(Image.fromarray((np.concatenate(rows) * 255).round().astype(np.uint8)))


def test_page_drop_image_shows_verdict_and_heat_map(tiny_detector, real_images, fake_images, tmp_path):
    from selenium.webdriver.common.by import By

    data = _mosaic(real_images, fake_images)
    with ServerProc(tiny_detector, log=tmp_path / "s.log") as server:
        status, ref = server.score([("mosaic.png", data)], "?heatmap=1")
        assert status == 200
        row = ref["results"][0]
        driver = _driver(430, 1100)  # a phone-sized window
        try:
            driver.get(f"http://127.0.0.1:{server.port}/")
            _wait(lambda: "dcgan_d" in driver.find_element(By.ID, "card").get_attribute("textContent"),
                  "the detector card")
            driver.execute_script(DROP_JS, base64.b64encode(data).decode(), "mosaic.png")
            box = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, ".result[data-state=done]"), "a verdict")[0]
            verdict = box.find_element(By.CSS_SELECTOR, ".verdict")
            assert verdict.get_attribute("data-label") == row["label"]
            assert f"{row['score']:.6f}" in box.text and f"{row['threshold']:.6f}" in box.text
            canvas = box.find_element(By.TAG_NAME, "canvas")
            _wait(lambda: canvas.get_attribute("data-tiles"), "the heat map")
            assert int(canvas.get_attribute("data-tiles")) == row["n_tiles"] > 1
            # readable on a phone: nothing wider than the screen
            assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
            driver.execute_script("document.getElementById('card-box').open = true")
            shot = tmp_path / "serve.png"
            driver.save_screenshot(str(shot))
            assert shot.stat().st_size > 0
            if os.environ.get("UNMASK_SERVE_SCREENSHOT"):
                shutil.copyfile(shot, os.environ["UNMASK_SERVE_SCREENSHOT"])
        finally:
            driver.quit()
        assert any(" POST /v1/score 200 images=1 " in line for line in server.log_text().splitlines())
