"""The diversity page from a hand-written diversify folder (no model run)."""

import numpy as np

from jaxsteer import cli, records
from jaxsteer.steer import grid_png


def test_diversify_folder_shows_both_grids_with_their_metrics(tmp_path):
    out = tmp_path / "div"
    imgs = np.linspace(-1, 1, 4 * 8 * 8 * 3).reshape(1, 4, 8, 8, 3)
    for name in ("without", "with"):
        records.atomic_write_bytes(out / f"samples_{name}.png",
                                   grid_png(imgs, [name], list("0123")))
    records.write_json(out / "diversity.json", {
        "without": {"pairwise_cosine_distance": 0.123456789, "vendi": 1.5, "alignment": 0.9},
        "with": {"pairwise_cosine_distance": 0.4, "vendi": 3.0, "alignment": 0.8}})
    assert cli.main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2
    assert "without steering" in page and "with steering" in page
    assert "Vendi score" in page and "0.123" in page and "0.123456789" not in page
    assert "alignment" in page
