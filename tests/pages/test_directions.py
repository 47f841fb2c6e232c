"""The direction cards and the strength scrubber, driven in a real headless Chromium."""

import shutil

import numpy as np
import pytest

from jaxsteer import report
from jaxsteer.steer import save_outputs

ALPHAS = np.array([-1.0, 0.0, 1.0])


@pytest.fixture
def steer_dir(tmp_path):
    """A steer folder of 2 directions x 2 seeds x 3 strengths: direction 0 brightens the whole
    image, direction 1 reddens the top half; the composition of both."""
    base = np.full((2, 8, 8, 3), -0.3, np.float32)
    base[1] -= 0.2
    ramp = ALPHAS[None, :, None, None, None]
    d0 = np.clip(base[:, None] + 0.5 * ramp, -1, 1)
    d1 = np.repeat(base[:, None], 3, axis=1)
    d1[:, :, :4, :, 0] += 0.8 * ramp[..., 0]
    pair = np.clip(base[:, None, None] + 0.5 * ALPHAS[None, :, None, None, None, None]
                   + 0.3 * ALPHAS[None, None, :, None, None, None], -1, 1)
    out = tmp_path / "steer"
    save_outputs(out, np.stack([d0, d1]), base, pair, ALPHAS,
                 {"prompt": "a circle", "token": "circle", "method": "pca", "indices": [0, 1],
                  "seeds": [0, 1], "scale": 1.5, "absolute": False, "significant": 1,
                  "pair": [0, 1]})
    return tmp_path


def test_cards_say_what_each_direction_does_numbered_from_zero(capsys, steer_dir):
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("direction 0 (significant): brightness +0.25")
    assert lines[1].startswith("direction 1 (not significant):")
    page = report.build(steer_dir).read_text()
    assert page.count('type="range"') == 4              # one per direction, two to compose
    assert 'id="direction-0"' in page and 'id="direction-1"' in page and "direction 2" not in page
    assert "significant</span>" in page and "not significant</span>" in page
    assert "+0.25" in page and "0.30000000000000004" not in page
    assert "http" not in page                            # opens offline


def _driver(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("Chromium and its driver are not installed (apt-get install chromium "
                    "chromium-driver); .ci/run installs them")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking", "--window-size=1100,900",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


def test_moving_a_slider_with_the_keyboard_changes_the_shown_image(steer_dir, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    page = report.build(steer_dir)
    browser = _driver(tmp_path)
    try:
        browser.get(page.as_uri())
        slider = browser.find_elements(By.CSS_SELECTOR, "#direction-0 input[type=range]")[0]
        frame = browser.find_elements(By.CSS_SELECTOR, "#direction-0 img.frame")[0]
        output = browser.find_elements(By.CSS_SELECTOR, "#direction-0 output")[0]
        before, label = frame.get_attribute("src"), output.text
        assert label == "0"
        slider.send_keys(Keys.ARROW_RIGHT)           # keyboard-accessible: focus, arrow key
        assert frame.get_attribute("src") != before and output.text == "+1"
        slider.send_keys(Keys.ARROW_LEFT)
        assert frame.get_attribute("src") == before
        # The composition view: each of its two sliders moves the same images.
        a, b = browser.find_elements(By.CSS_SELECTOR, "#composition input[type=range]")
        both = browser.find_elements(By.CSS_SELECTOR, "#composition img.frame")[1]
        start = both.get_attribute("src")
        a.send_keys(Keys.ARROW_LEFT)
        after_a = both.get_attribute("src")
        b.send_keys(Keys.ARROW_RIGHT)
        assert len({start, after_a, both.get_attribute("src")}) == 3
        shot = tmp_path / "shot.png"
        browser.save_screenshot(str(shot))
    finally:
        browser.quit()
    from PIL import Image
    pixels = np.asarray(Image.open(shot).convert("RGB"), np.float32)
    assert pixels.std() > 10                          # text and images drawn, not blank


def test_a_direction_set_and_steer_results_show_inline_in_a_notebook(steer_dir):
    import jax.numpy as jnp

    from jaxsteer.decompose import DirectionSet
    from jaxsteer.steer import SteerResult
    ds = DirectionSet(directions=jnp.eye(2, 8), mean=jnp.zeros(8),
                      explained_variance_ratio=jnp.asarray([0.7, 0.2, 0.1]),
                      metadata={"method": "pca", "prompt": "a circle"})
    view = ds._repr_html_()
    assert "DirectionSet" in view and "a circle" in view and "<svg" in view and "0.7" in view
    assert 'type="range"' in SteerResult({"out": str(steer_dir / "steer")})._repr_html_()
