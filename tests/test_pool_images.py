"""`pool-from-images`: a folder of images becomes a pool `collect` accepts; bad files skipped."""

import json

import numpy as np
from PIL import Image

from jaxsteer import cli
from jaxsteer.sample import read_pool
from jaxsteer.store import open_existing

PROMPT = "a picture of a monster"


def images(folder, n):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):  # mixed sizes and formats
        pixels = rng.integers(0, 255, (10 + 3 * i, 14 + i, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:02d}.{'png' if i % 2 else 'jpg'}")


def test_images_become_a_pool_that_collect_takes_and_bad_files_are_listed(tmp_path, capsys):
    src = tmp_path / "imgs"
    images(src, 5)
    (src / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "pool"
    args = ["pool-from-images", str(src), "--model", "tiny", "--prompt", PROMPT, "--batch", "2",
            "--out", str(out)]
    assert cli.main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["samples"] == 5 and summary["skipped"] == 1 and summary["encoded_now"] == 5
    skipped = json.loads((out / "skipped.json").read_text())
    assert skipped[0]["file"].endswith("broken.png")
    latents, manifest = read_pool(out)
    assert latents.shape == (5, 4, 8, 8) and np.isfinite(latents).all()
    assert len(set(map(bytes, latents.reshape(5, -1)))) == 5          # five different images
    assert cli.main(args) == 0                                          # resumed: nothing to do
    assert json.loads(capsys.readouterr().out)["encoded_now"] == 0
    assert len(open_existing(out, "pool").done()) == 3
    assert cli.main(["collect", "--model", "tiny", "--steps", "1", "--prompt", PROMPT,
                     "--token", "monster", "--pool", str(out), "--pairs", "4", "--batch", "4",
                     "--devices", "1", "--out", str(tmp_path / "grads")]) == 0


def test_pixel_space_models_take_images_at_their_resolution(tmp_path, capsys):
    src = tmp_path / "imgs"
    images(src, 2)
    assert cli.main(["pool-from-images", str(src), "--model", "shapes", "--prompt", "a circle",
                     "--out", str(tmp_path / "pool")]) == 0
    assert json.loads(capsys.readouterr().out)["image_size"] == [32, 32]
    latents, _ = read_pool(tmp_path / "pool")
    assert latents.shape == (2, 3, 32, 32) and latents.min() >= -1 and latents.max() <= 1
