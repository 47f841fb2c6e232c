"""`jaxsteer pool-from-images`: a folder of images (made anywhere, e.g. a PyTorch pipeline) as a
jaxsteer pool: encoded through the model's autoencoder into a resumable, checksummed pool that
`collect --pool` accepts. Unreadable images are listed in ``skipped.json`` and left out.

Images are resized to the model's resolution as diffusers' image processor does by default
(straight to the target size, Lanczos; no crop), RGB, scaled to [-1, 1].
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer import progress, records, sharding
from jaxsteer.config import check_sections, opt, to_dict
from jaxsteer.errors import UserError
from jaxsteer.models import ModelConfig
from jaxsteer.store import ShardStore

SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclasses.dataclass(frozen=True)
class PoolFromImagesRun:
    model: ModelConfig = opt(default_factory=ModelConfig, help="which model, and how to load it")
    images: Path = opt(Path("."), "folder of PNG / JPEG / WebP images (searched recursively)",
                       positional=True)
    prompt: str = opt("", "the prompt the images show (collect checks it against its own)")
    batch: int = opt(16, "images per compiled call and per shard")
    devices: int = opt(-1, "devices to use; -1 = all local devices")
    out: Path = opt(Path("runs/pool"), "output folder (resumed if it holds the same run)")

    def __post_init__(self):
        check_sections(self)
        if self.batch < 1:
            raise UserError(f"--batch must be positive, got {self.batch}")
        if not self.prompt:
            raise UserError("--prompt is empty: name the prompt the images were made from")


def image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` in a fixed (sorted) order."""
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder of images")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def read_image(path: Path, size: tuple[int, int]) -> np.ndarray:
    """[H, W, 3] float32 in [-1, 1], resized to ``size`` = (H, W); raises on a bad file."""
    from PIL import Image
    with Image.open(path) as im:
        im = im.convert("RGB").resize((size[1], size[0]), Image.Resampling.LANCZOS)
        return np.asarray(im, np.float32) / 127.5 - 1.0


def readable(files: list[Path], size: tuple[int, int]) -> tuple[list[Path], list[dict]]:
    """(files that decode, [{file, error}] of those that do not)."""
    good, bad = [], []
    for path in files:
        try:
            read_image(path, size)
            good.append(path)
        except Exception as e:  # noqa: BLE001 - any decoder failure means "skip this file"
            bad.append({"file": str(path), "error": f"{type(e).__name__}: {str(e)[:200]}"})
    return good, bad


def image_size(model, params) -> tuple[int, int]:
    """(H, W) of the images the model's decoder makes from its latent shape."""
    latent = jax.ShapeDtypeStruct((1, *model.latent_shape), jnp.float32)
    return tuple(jax.eval_shape(model.decode, params, latent).shape[1:3])


def run(cfg: PoolFromImagesRun) -> dict:
    records.check_out(cfg.out)
    files = image_files(cfg.images)
    if not files:
        raise UserError(f"{cfg.images} holds no {'/'.join(SUFFIXES)} images")
    bundle = cfg.model.load_model()
    model = bundle.model
    model.tokenize(cfg.prompt)  # a bad prompt fails before anything is written
    size = image_size(model, bundle.params)
    good, bad = readable(files, size)
    if len(good) < 2:
        raise UserError(f"{cfg.images}: {len(good)} readable image(s); a pool needs at least 2")
    listing = hashlib.sha256("\n".join(str(p.relative_to(cfg.images)) for p in good).encode())
    identity = {"model": cfg.model.name, "prompt": cfg.prompt, "source": "images",
                "images": str(cfg.images.resolve()), "files_sha256": listing.hexdigest(),
                "dtype": bundle.info["dtype"], "latent_shape": list(model.latent_shape)}
    store = ShardStore.open(cfg.out, "pool", identity, {"config": to_dict(cfg),
                            "model_info": bundle.info}, shard_size=cfg.batch, total=len(good))
    mesh = sharding.local_mesh(cfg.devices)
    with store.writing():
        records.write_json(cfg.out / "skipped.json", bad)
        encoded = _encode(store, model, sharding.put_replicated(mesh, bundle.params), good, size,
                          mesh)
    return {"out": str(cfg.out), "samples": store.total, "encoded_now": encoded,
            "skipped": len(bad), "skipped_file": str(cfg.out / "skipped.json"),
            "image_size": list(size)}


def _encode(store: ShardStore, model, params, files: list[Path], size, mesh) -> int:
    """Encodes the store's missing (or damaged) shards; returns how many images it encoded."""
    encode = jax.jit(model.encode_image)
    todo, done = store.todo(), 0
    devices = sharding.data_size(mesh)
    for i in progress.bar(todo, desc="encoding", unit="shard"):
        idx = np.asarray(store.shard_range(i))
        images = sharding.pad_batch(np.stack([read_image(files[j], size) for j in idx]), devices)
        latents = np.asarray(encode(params, sharding.put_batch(mesh, images)))[: len(idx)]
        store.write_shard(i, {"latents": latents.astype(np.float32),
                              "index": idx.astype(np.int64)})
        done += len(idx)
    return done
