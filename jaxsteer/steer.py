"""Steering (DESIGN.md section 1.5): add ``s * u`` to the token rows of a word, render, grid.

A direction of a DirectionSet has width ``r * d``: the r token rows differentiated at collection,
side by side. Steering reshapes it to [r, d] and adds it to those rows. Strength is unit-free by
default: ``s = alpha * (mean L2 norm of those rows of the prompt's embedding)``; ``--absolute``
takes alpha as the raw strength (the authors use 30-40 for PCA and 50-60 for SAE on SDXL).
"""

from __future__ import annotations

import dataclasses
import functools
import io
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxsteer import checkpoint, effects, records, sharding
from jaxsteer.config import check_sections, opt
from jaxsteer.errors import UserError
from jaxsteer.models import ModelConfig
from jaxsteer.models.base import DiffusionModel, ModelBundle, TextCond
from jaxsteer.models.bundled import PROBES
from jaxsteer.pages.directions import directions_html
from jaxsteer.pages.html import to_uint8
from jaxsteer.sample import encode_prompt
from jaxsteer.sampling import SamplerConfig, generate


def parse_alphas(text: str) -> np.ndarray:
    """'-3:3:7' (start:stop:count, inclusive) or '0,1.5,3' -> float array."""
    try:
        if ":" in text:
            start, stop, count = text.split(":")
            if int(count) < 1:
                raise ValueError
            return np.linspace(float(start), float(stop), int(count))
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--alphas {text!r}: use start:stop:count (e.g. -3:3:7) or a "
                        "comma list (e.g. 0,1,2)") from None
    if not values:
        raise UserError("--alphas is empty")
    return np.asarray(values)


def direction_rows(dirs_kd: np.ndarray, num_rows: int) -> np.ndarray:
    """[k, r * d] directions -> [k, r, d] per-row offsets."""
    k, width = dirs_kd.shape
    if width % num_rows:
        raise UserError(f"directions of width {width} do not split into {num_rows} token rows")
    return dirs_kd.reshape(k, num_rows, width // num_rows)


def row_scale(emb_td: np.ndarray, rows: tuple[int, ...]) -> float:
    """Mean L2 norm of the steered rows: the unit of the unit-free alpha."""
    return float(np.mean(np.linalg.norm(np.asarray(emb_td)[list(rows)], axis=-1)))


def steer_embeddings(emb_td: jax.Array, rows: tuple[int, ...], offsets_brd: jax.Array,
                     strengths_b: jax.Array) -> jax.Array:
    """[t, d] embedding + strength * offset at ``rows`` for each of b samples -> [b, t, d]."""
    b = offsets_brd.shape[0]
    delta = strengths_b[:, None, None].astype(emb_td.dtype) * offsets_brd.astype(emb_td.dtype)
    base = jnp.broadcast_to(emb_td, (b, *emb_td.shape))
    return base.at[:, jnp.asarray(rows), :].add(delta)


def steered_cond(cond: TextCond, rows: tuple[int, ...], offsets_brd: jax.Array | None,
                 strengths_b: jax.Array | None = None, n: int | None = None) -> TextCond:
    """The one steering function (`steer`, `diversity`, the ground-truth benchmark): the prompt's
    conditioning [t, d] for b samples, ``strength * offset`` added at ``rows``.

    Args:
      offsets_brd: [b, r, d] offsets of the rows (`direction_rows`), or None for b = ``n``
        unsteered copies.
      strengths_b: [b] multipliers of the offsets (default 1).

    Returns:
      a TextCond with emb [b, t, d] and ``extra`` broadcast to b.
    """
    if offsets_brd is None:
        emb = jnp.broadcast_to(cond.emb, (n, *cond.emb.shape))
    else:
        offsets_brd = jnp.asarray(offsets_brd)
        if strengths_b is None:
            strengths_b = jnp.ones((offsets_brd.shape[0],), jnp.float32)
        emb = steer_embeddings(cond.emb, rows, offsets_brd, strengths_b)
    b = emb.shape[0]
    return TextCond(emb=emb, extra=jax.tree.map(lambda x: jnp.broadcast_to(x, (b, *x.shape)),
                                                cond.extra))


@functools.lru_cache(maxsize=8)
def make_renderer(model: DiffusionModel, sampler: SamplerConfig, mesh):
    """Jitted ``f(params, cond_b, uncond, keys_b) -> images [b, H, W, 3]``, batch split."""
    sched = sampler.schedule(model)

    def render(params, cond, uncond, keys_b):
        lat = generate(model, params, cond, uncond, keys_b, sched, jnp.float32(sampler.guidance),
                       shared_noise=sampler.shared_noise)
        return model.decode(params, lat)

    repl, split = sharding.replicated(mesh), sharding.batch_sharding(mesh)
    return jax.jit(render, in_shardings=(repl, split, repl, split), out_shardings=split)


def render_batches(bundle: ModelBundle, sampler: SamplerConfig, mesh, cond_b: TextCond,
                   uncond: TextCond | None, keys_b: jax.Array, batch: int) -> np.ndarray:
    """Renders any number of samples in padded batches of ``batch`` (a multiple of devices)."""
    render = make_renderer(bundle.model, sampler, mesh)
    return render_padded(render, mesh, (bundle.params,), (cond_b,), (uncond,), keys_b, batch)


def render_padded(render, mesh, replicated: tuple, batched: tuple, more: tuple,
                  keys_b: jax.Array, batch: int) -> np.ndarray:
    """``render(*replicated, *batched, *more, keys)`` over any number of samples, in padded
    batches of ``batch`` (a multiple of devices), so one compiled program serves every count.

    ``replicated`` (weights) and ``more`` (unbatched conditioning) go to every device;
    ``batched`` trees and ``keys_b`` are split along their first axis.
    """
    size = sharding.padded_size(batch, sharding.data_size(mesh))
    n = keys_b.shape[0]
    replicated, more = sharding.put_replicated(mesh, (replicated, more))
    out = []
    for start in tqdm(range(0, n, size), desc="rendering", unit="batch", disable=None):
        idx = np.minimum(np.arange(start, start + size), n - 1)  # pad with the last sample
        part = jax.tree.map(lambda a, idx=idx: a[idx], batched)
        imgs = render(*replicated, *sharding.put_batch(mesh, part), *more,
                      sharding.put_batch(mesh, keys_b[idx]))
        out.append(np.asarray(imgs)[: min(size, n - start)])
    return np.concatenate(out)


def grid_png(images_ijhwc: np.ndarray, row_labels: list[str], col_labels: list[str],
             cell: int = 96) -> bytes:
    """A labelled grid (rows x columns of images in [-1, 1]) as PNG bytes."""
    from PIL import Image, ImageDraw

    rows, cols = images_ijhwc.shape[:2]
    left, top = 70, 18
    canvas = Image.new("RGB", (left + cols * cell, top + rows * cell), "white")
    draw = ImageDraw.Draw(canvas)
    for j, label in enumerate(col_labels):
        draw.text((left + j * cell + 4, 3), label, fill="black")
    for i, label in enumerate(row_labels):
        draw.text((4, top + i * cell + cell // 2 - 6), label, fill="black")
        for j in range(cols):
            pix = to_uint8(images_ijhwc[i, j])
            tile = Image.fromarray(pix).resize((cell - 2, cell - 2), Image.NEAREST)
            canvas.paste(tile, (left + j * cell + 1, top + i * cell + 1))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


@dataclasses.dataclass(frozen=True)
class SteerRun:
    sampler: SamplerConfig = opt(default_factory=SamplerConfig, help="sampler settings")
    model: ModelConfig = opt(default_factory=ModelConfig, help="which model, and how to load it")
    directions: Path = opt(Path("."), "DirectionSet checkpoint (from `jaxsteer decompose`), or "
                           "the collect run folder holding it",
                           positional=True)
    indices: tuple[int, ...] = opt((0, 1, 2), "which directions, comma separated")
    alphas: str = opt("-3:3:7", "strengths: start:stop:count or a comma list")
    seeds: tuple[int, ...] = opt((0, 1), "seeds, one grid row group each")
    absolute: bool = opt(False, "alphas are raw strengths (authors: 30-40 PCA, 50-60 SAE on "
                         "SDXL) instead of multiples of the token rows' norm")
    prompt: str | None = opt(None, "prompt; default: the one the directions were found for")
    compose: tuple[str, ...] = opt((), "also apply, in every image, directions of other words "
                                   "of the prompt, each on its own rows: DIRSET:INDEX:ALPHA,...")
    pair: bool = opt(True, "also render the first two directions together, every strength "
                     "against every other (the report's composition view)")
    probe: str = opt("auto", "read factors off the images: shapes | none | auto (shapes on "
                     "the bundled shapes models)", choices=("auto", "shapes", "none"))
    batch: int = opt(16, "images per compiled call")
    devices: int = opt(-1, "devices to use; -1 = all local devices")
    out: Path = opt(Path("runs/steer"), "output folder for the grids")

    def __post_init__(self):
        check_sections(self)
        if not self.seeds:
            raise UserError("--seeds is empty: give at least one seed, e.g. --seeds 0,1")
        if not self.indices:
            raise UserError("--indices is empty: give direction indices, e.g. --indices 0,1")
        parse_alphas(self.alphas)


def resolve_directions(path: Path) -> Path:
    """A DirectionSet checkpoint, or a collect run folder holding one (directions_pca first)."""
    if (path / "manifest.json").exists():
        for name in ("directions_pca", "directions_sae"):
            if (path / name).is_dir():
                return path / name
        raise UserError(f"{path} is a run folder without directions_pca/ or directions_sae/: "
                        f"run `jaxsteer decompose {path}` first, or name the DirectionSet")
    return path


def check_compatible(ds_meta: dict, dim: int, bundle: ModelBundle, model_name: str) -> None:
    """A DirectionSet from another model or embedding size is refused, with the reason."""
    embed = bundle.model.embed_dim
    rows = len(ds_meta.get("token_rows", [1]))
    problems = []
    if ds_meta.get("model") not in (None, model_name):
        problems.append(f"found with model {ds_meta.get('model')!r}, steering {model_name!r}")
    if dim != rows * embed:
        problems.append(f"direction width {dim} != {rows} token row(s) x embedding {embed}")
    if problems:
        raise UserError("these directions do not fit this model: " + "; ".join(problems))


def composed_offset(specs: tuple[str, ...], cond_td: np.ndarray, absolute: bool,
                    bundle: ModelBundle, model_name: str, prompt: str) -> np.ndarray:
    """[t, d] sum of fixed steering offsets from other DirectionSets (other words, own rows)."""
    total = np.zeros(np.asarray(cond_td).shape, np.float32)
    tokens = bundle.model.tokenize(prompt)
    for spec in specs:
        try:
            path, index, alpha = spec.rsplit(":", 2)
            index, alpha = int(index), float(alpha)
        except ValueError:
            raise UserError(f"--compose {spec!r}: use DIRSET:INDEX:ALPHA") from None
        ds = checkpoint.load(path)
        check_compatible(ds.metadata, ds.dim, bundle, model_name)
        if not 0 <= index < ds.k:
            raise UserError(f"--compose {spec!r}: index out of range (0..{ds.k - 1})")
        rows = tokens.rows(ds.metadata["token"])
        off_rd = direction_rows(np.asarray(ds.directions)[index:index + 1], len(rows))[0]
        scale = 1.0 if absolute else row_scale(cond_td, rows)
        total[list(rows)] += alpha * scale * off_rd
    return total


def run(cfg: SteerRun) -> dict:
    records.check_out(cfg.out)
    ds = checkpoint.load(resolve_directions(cfg.directions))
    meta = ds.metadata
    bad = [i for i in cfg.indices if not 0 <= i < ds.k]
    if bad:
        raise UserError(f"direction index {bad[0]} is out of range: this set has {ds.k} "
                        f"directions (0..{ds.k - 1})")
    bundle = cfg.model.load_model()
    check_compatible(meta, ds.dim, bundle, cfg.model.name)
    prompt = cfg.prompt or meta.get("prompt")
    if not prompt:
        raise UserError("the directions carry no prompt: pass --prompt")
    tokens = bundle.model.tokenize(prompt)
    rows = tokens.rows(meta["token"]) if cfg.prompt else tuple(meta["token_rows"])
    alphas = parse_alphas(cfg.alphas)
    mesh = sharding.local_mesh(cfg.devices)
    cond, uncond = encode_prompt(bundle, prompt, cfg.sampler.use_cfg)
    offsets_krd = direction_rows(np.asarray(ds.directions), len(meta.get("token_rows", rows)))
    if offsets_krd.shape[1] != len(rows):
        raise UserError(f"the directions span {offsets_krd.shape[1]} token rows, but "
                        f"{meta['token']!r} has {len(rows)} in {prompt!r}")
    scale = 1.0 if cfg.absolute else row_scale(cond.emb, rows)
    # One sample per (direction, seed, alpha): same seed across alphas, so only steering differs.
    grid = [(i, s, a) for i in cfg.indices for s in cfg.seeds for a in alphas]
    offsets = jnp.asarray(np.stack([offsets_krd[i] for i, _, _ in grid]))
    strengths = jnp.asarray([a * scale for _, _, a in grid], jnp.float32)
    base_td = cond.emb + composed_offset(cfg.compose, cond.emb, cfg.absolute, bundle,
                                         cfg.model.name, prompt)
    # Then the unsteered image of each seed, and the first two directions together.
    pair = cfg.indices[:2] if cfg.pair and len(cfg.indices) >= 2 else None
    both = [(s, a, b) for s in cfg.seeds for a in alphas for b in alphas] if pair else []
    offsets = jnp.concatenate([offsets, jnp.zeros((len(cfg.seeds), *offsets.shape[1:]))] + (
        [jnp.asarray(np.stack([a * offsets_krd[pair[0]] + b * offsets_krd[pair[1]]
                               for _, a, b in both]))] if pair else []))
    strengths = jnp.concatenate([strengths, jnp.full(len(cfg.seeds) + len(both), scale,
                                                     jnp.float32)])
    seeds = [s for _, s, _ in grid] + list(cfg.seeds) + [s for s, _, _ in both]
    cond_b = steered_cond(cond.replace(emb=base_td), rows, offsets, strengths)
    keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))
    rendered = render_batches(bundle, cfg.sampler, mesh, cond_b, uncond, keys, cfg.batch)
    k, s, a = len(cfg.indices), len(cfg.seeds), len(alphas)
    images = rendered[: k * s * a].reshape(k, s, a, *rendered.shape[1:])
    unsteered = rendered[k * s * a: k * s * a + s]
    paired = rendered[k * s * a + s:].reshape(s, a, a, *rendered.shape[1:]) if pair else None
    cols = [f"{a:+.2g}" for a in alphas]
    paths = []
    for n, i in enumerate(cfg.indices):
        png = grid_png(images[n], [f"seed {s}" for s in cfg.seeds], cols)
        path = cfg.out / f"direction_{i:03d}.png"
        records.atomic_write_bytes(path, png)
        paths.append(str(path))
    probe = PROBES.get(cfg.model.name) if cfg.probe == "auto" else (
        None if cfg.probe == "none" else cfg.probe)
    significant = ds.significant_count() if ds.explained_variance_ratio is not None else None
    summary = save_outputs(cfg.out, images, unsteered, paired, alphas, {
        "prompt": prompt, "token": meta.get("token"), "method": ds.method,
        "indices": list(cfg.indices), "seeds": list(cfg.seeds), "scale": scale,
        "absolute": cfg.absolute, "significant": significant,
        "pair": list(pair) if pair else None, "compose": list(cfg.compose)}, probe)
    return SteerResult({"out": str(cfg.out), "grids": paths, "alphas": summary["alphas"],
                        "scale": scale, "prompt": prompt, "token": meta.get("token"),
                        "significant": significant, "effects": summary["effects"]})


def save_outputs(out: Path, images_ksahwc: np.ndarray, unsteered_shwc: np.ndarray,
                 paired_saahwc: np.ndarray | None, alphas_a: np.ndarray, info: dict,
                 probe: str | None = None) -> dict:
    """Writes what the report's scrubber shows (``steer.safetensors``: uint8 images and heat
    maps) and ``steer.json`` (``info`` plus the strengths and every direction's measured
    effects, `jaxsteer.effects`); prints one line of effects per direction. Returns the JSON.

    ``info`` holds at least ``indices`` (the directions' numbers, 0-based everywhere) and
    ``significant`` (how many leading PCA directions pass the 2.5 / D rule; None for an SAE).
    """
    sig = info.get("significant")
    found = {}
    for n, i in enumerate(info["indices"]):
        found[str(i)] = effects.describe(images_ksahwc[n], unsteered_shwc, alphas_a, probe)
        mark = "" if sig is None else (" (significant)" if i < sig else " (not significant)")
        print(f"direction {i}{mark}: {effects.summary(found[str(i)])}")
    arrays = {"images": to_uint8(images_ksahwc), "unsteered": to_uint8(unsteered_shwc),
              "heat": np.stack([effects.heat_map(x, unsteered_shwc) for x in images_ksahwc])}
    if paired_saahwc is not None:
        arrays["pair"] = to_uint8(paired_saahwc)
    records.save_arrays(out / "steer.safetensors", arrays)
    summary = {**info, "alphas": [round(float(a), 6) for a in alphas_a], "probe": probe,
               "effects": found}
    records.write_json(out / "steer.json", summary)
    return summary


class SteerResult(dict):
    """`run`'s summary; in a notebook it shows the steering grids and scrubbers inline."""

    def _repr_html_(self) -> str:
        return directions_html(Path(self["out"]))
