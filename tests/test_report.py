import shutil
import subprocess

import numpy as np
import pytest

from jaxsteer import cli, records
from jaxsteer.steer import grid_png


@pytest.fixture
def run_dir(tmp_path):
    imgs = np.linspace(-1, 1, 2 * 3 * 8 * 8 * 3).reshape(2, 3, 8, 8, 3)
    records.atomic_write_bytes(tmp_path / "steer" / "direction_000.png",
                               grid_png(imgs, ["seed 0", "seed 1"], ["-1", "0", "+1"]))
    records.write_json(tmp_path / "diversify" / "diversity.json", {
        "without": {"pairwise_cosine_distance": 0.2, "vendi": 1.5},
        "with": {"pairwise_cosine_distance": 0.4, "vendi": 3.0}})
    import jax.numpy as jnp

    from jaxsteer import checkpoint
    from jaxsteer.decompose import DirectionSet
    checkpoint.save(DirectionSet(directions=jnp.eye(2, 8), mean=jnp.zeros(8),
                                 metadata={"sae_metrics": {"fvu": 0.125, "l0": 4.0}}),
                    tmp_path / "directions_sae")
    return tmp_path


def test_report_is_self_contained(run_dir):
    assert cli.main(["report", str(run_dir)]) == 0
    page = (run_dir / "report.html").read_text()
    assert "data:image/png;base64," in page and "Vendi" in page and "src=\"http" not in page
    assert "SAE (directions_sae)" in page and "0.125" in page


def test_empty_folder_is_refused(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "nothing to report" in capsys.readouterr().err


def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    assert cli.main(["report", str(run_dir)]) == 0
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                    "--window-size=1000,800", (run_dir / "report.html").as_uri()],
                   check=True, timeout=120, capture_output=True)
    from PIL import Image
    pixels = np.asarray(Image.open(shot).convert("RGB"), np.float32)
    assert pixels.shape[:2] == (800, 1000)
    assert pixels.std() > 10  # not a blank page: the text and the grid are drawn
