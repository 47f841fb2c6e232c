"""The sample pool (DESIGN.md section 1.1): generate N images for a prompt, kept as latents.

Sample ``i`` is generated from ``fold_in(key(seed), i)`` alone, so the pool does not depend on the
batch size or the number of devices, and a killed run resumes exactly where it stopped.
"""

from __future__ import annotations

import dataclasses
import functools
import io
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer import progress, records, sharding
from jaxsteer.config import check_sections, opt, to_dict
from jaxsteer.errors import UserError
from jaxsteer.models import ModelConfig
from jaxsteer.models.base import ModelBundle
from jaxsteer.pages.html import to_uint8
from jaxsteer.sampling import SamplerConfig, broadcast_cond, generate, jit_encode_text
from jaxsteer.store import ShardStore, open_existing, read_manifest


@dataclasses.dataclass(frozen=True)
class SampleRun:
    sampler: SamplerConfig = opt(default_factory=SamplerConfig, help="sampler settings")
    model: ModelConfig = opt(default_factory=ModelConfig, help="which model, and how to load it")
    prompt: str = opt("", "the text prompt")
    n: int = opt(64, "pool size (the authors use 10,000)")
    seed: int = opt(4, "base seed; sample i uses fold_in(key(seed), i) (authors: 4)")
    batch: int = opt(16, "samples per compiled call and per shard (padded to the device count)")
    thumbnails: bool = opt(False, "also write a PNG of every sample to OUT/thumbs")
    devices: int = opt(-1, "devices to use; -1 = all local devices")
    out: Path = opt(Path("runs/pool"), "output folder (resumed if it holds the same run)")

    def __post_init__(self):
        check_sections(self)
        if self.n < 2:
            raise UserError(f"--n must be at least 2 (pairs need two samples), got {self.n}")
        if self.batch < 1:
            raise UserError(f"--batch must be positive, got {self.batch}")


@functools.lru_cache(maxsize=8)
def make_generator(model, cfg: SamplerConfig, mesh):
    """Jitted ``f(params, cond, uncond, keys_b) -> latents`` with the batch split over devices."""
    sched = cfg.schedule(model)

    def gen(params, cond, uncond, keys_b):
        c = broadcast_cond(cond, keys_b.shape[0])
        return generate(model, params, c, uncond, keys_b, sched, jnp.float32(cfg.guidance),
                        shared_noise=cfg.shared_noise)

    repl, split = sharding.replicated(mesh), sharding.batch_sharding(mesh)
    return jax.jit(gen, in_shardings=(repl, repl, repl, split), out_shardings=split)


def encode_prompt(bundle: ModelBundle, prompt: str, use_cfg: bool):
    """(cond, uncond) TextConds for a prompt, unbatched; uncond is None without guidance."""
    model = bundle.model
    enc = jit_encode_text(model)
    first = lambda tree: jax.tree.map(lambda a: a[0], tree)  # noqa: E731
    cond = first(enc(bundle.params, model.tokenize(prompt).ids_et[None]))
    uncond = None
    if use_cfg:
        uncond = first(enc(bundle.params, model.tokenize("", allow_empty=True).ids_et[None]))
    return cond, uncond


def png_bytes(image_hwc: np.ndarray) -> bytes:
    """An image in [-1, 1] as PNG bytes."""
    from PIL import Image
    pixels = to_uint8(image_hwc)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def run(cfg: SampleRun) -> dict:
    """Generates (or finishes) the pool in ``cfg.out``; returns a summary."""
    records.check_out(cfg.out)
    bundle = cfg.model.load_model()
    model = bundle.model
    model.tokenize(cfg.prompt)  # bad prompts fail here, before anything is written
    sampler = cfg.sampler
    identity = {"model": cfg.model.name, "prompt": cfg.prompt, "steps": sampler.steps,
                "scheduler": sampler.scheduler, "spacing": sampler.spacing,
                "timesteps": list(sampler.timesteps),
                "guidance": sampler.guidance, "seed": cfg.seed, "dtype": bundle.info["dtype"],
                "jax": jax.__version__,  # another jax draws other numbers: no resuming across
                "latent_shape": list(model.latent_shape)}
    mesh = sharding.local_mesh(cfg.devices)
    store = ShardStore.open(cfg.out, "pool", identity,
                            {"config": to_dict(cfg), "model_info": bundle.info},
                            shard_size=cfg.batch, total=cfg.n)
    with store.writing():  # one writer per folder: a second `sample` on it is refused
        return _generate(cfg, bundle, mesh, store)


def _generate(cfg: SampleRun, bundle: ModelBundle, mesh, store: ShardStore) -> dict:
    """Makes the pool's missing (or damaged) shards; the caller holds the folder's lock."""
    model = bundle.model
    params = sharding.put_replicated(mesh, bundle.params)
    cond, uncond = sharding.put_replicated(mesh, encode_prompt(bundle, cfg.prompt,
                                                               cfg.sampler.use_cfg))
    gen = make_generator(model, cfg.sampler, mesh)
    decode = jax.jit(model.decode) if cfg.thumbnails else None
    thumbs = cfg.out / "thumbs" if cfg.thumbnails else None
    generated = fill_pool(store, gen, params, cond, uncond, jax.random.key(cfg.seed), mesh,
                          decode, thumbs)
    return {"out": str(cfg.out), "samples": store.total, "generated": generated}


def fill_pool(store: ShardStore, gen, params, cond, uncond, base_key: jax.Array, mesh,
              decode=None, thumbs: Path | None = None, show: bool = True) -> int:
    """Generates the store's missing shards with ``gen`` (`make_generator`'s program, or its
    compiled form) and returns how many samples were made.

    One shard in flight: shard i+1 is dispatched before shard i is copied to the host and
    written, so disk writes overlap the device's work. Sample ``j`` comes from
    ``fold_in(base_key, j)`` whatever the batching.
    """
    todo = store.todo()
    devices = sharding.data_size(mesh)
    bar = progress.bar(total=len(todo), desc="sampling", unit="shard") if show else None

    def dispatch(i: int):
        idx = np.asarray(store.shard_range(i))
        keys = jax.vmap(jax.random.fold_in, (None, 0))(
            base_key, jnp.asarray(sharding.pad_batch(idx, devices)))
        return i, idx, gen(params, cond, uncond, sharding.put_batch(mesh, keys))

    pending, made = None, 0
    for i in [*todo, None]:
        nxt = dispatch(i) if i is not None else None
        if pending is not None:
            j, idx, out = pending
            latents = np.asarray(out)[: len(idx)]
            if decode is not None:
                for k, img in zip(idx, np.asarray(decode(params, latents))):
                    records.atomic_write_bytes(thumbs / f"{k:06d}.png", png_bytes(img))
            store.write_shard(j, {"latents": latents.astype(np.float32),
                                  "index": idx.astype(np.int64)})
            made += len(idx)
            if bar is not None:
                bar.update(1)
        pending = nxt
    if bar is not None:
        bar.close()
    return made


def read_pool(folder: str | Path) -> tuple[np.ndarray, dict]:
    """Latents [N, c, h, w] of a finished pool and its manifest."""
    if not (Path(folder) / "manifest.json").exists():
        raise UserError(f"--pool {folder} is not a sample pool (no manifest.json); "
                        "make one with `jaxsteer sample`, or use --pool none")
    store = open_existing(folder, "pool")
    return store.read(("latents",))["latents"], store.manifest


# Sampler settings a pool records, which `collect` takes from it unless a flag overrides them.
POOL_SAMPLER_FIELDS = ("steps", "scheduler", "spacing", "timesteps", "guidance")


def pool_sampler_settings(values: dict) -> dict:
    """The sampler settings of the pool that ``values`` (parsed flags and YAML) name, as
    presets for `jaxsteer.config.parse`: a pool sampled with ``--guidance 0`` is collected
    with guidance 0, not the model preset's. Empty without a readable pool."""
    pool = values.get("pool")
    if pool in (None, "none") or not (Path(str(pool)) / "manifest.json").exists():
        return {}
    ident = read_manifest(str(pool)).get("identity", {})
    return {k: ident[k] for k in POOL_SAMPLER_FIELDS if k in ident}


def pool_differences(cfg: SamplerConfig, manifest: dict) -> list[str]:
    """'guidance 3.0 (pool 0.0)' for each sampler setting in which ``cfg`` differs from the pool."""
    ident = manifest.get("identity", {})
    out = []
    for k in POOL_SAMPLER_FIELDS:
        mine = getattr(cfg, k)
        theirs = ident.get(k)
        if k == "timesteps":
            mine, theirs = list(mine), list(theirs or [])
        if k in ident and mine != theirs:
            out.append(f"{k} {mine} (pool {theirs})")
    return out
