"""Per-pair gradients of a prompt: the `Collector` (one compiled kernel, any prompt) and
`jaxsteer collect`.

The kernel itself (the pair loss, its gradient w.r.t. the token rows, the jit) is
`jaxsteer.kernel`; the Collector places its inputs, pads batches, picks a program that fits the
device's memory, and drives batches with one in flight (`Collector.iter_gradients`), for
`collect`, `survey` and the ground-truth benchmark alike.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from jaxsteer import progress, records, sharding
from jaxsteer.config import check_sections, opt, to_dict
from jaxsteer.errors import UserError
from jaxsteer.kernel import FEATURES as FEATURES
from jaxsteer.kernel import KernelInputs as KernelInputs
from jaxsteer.kernel import KernelSpec as KernelSpec
from jaxsteer.kernel import PairBatch as PairBatch
from jaxsteer.kernel import PromptInputs as PromptInputs
from jaxsteer.kernel import kernel_key as kernel_key
from jaxsteer.kernel import make_kernel as make_kernel
from jaxsteer.kernel import pair_grads as pair_grads
from jaxsteer.kernel import pair_loss as pair_loss
from jaxsteer.models import ModelConfig, remat
from jaxsteer.models.base import DiffusionModel, ModelBundle, TextCond
from jaxsteer.sample import pool_differences, pool_sampler_settings, read_pool
from jaxsteer.sampling import SamplerConfig, jit_encode_text
from jaxsteer.store import ShardStore

# XLA's buffer assignment is not the whole story (fragmentation, other live buffers): on the
# H100 a program whose temporaries were about 95% of the free memory ran out and one at 86% ran
# (free memory estimated as the allocator's share of the GPU minus the resident weights).
MEMORY_HEADROOM = 0.9


def device_memory(mesh: Mesh) -> tuple[int, int] | None:
    """(bytes limit, bytes in use) of this process's first device of the mesh, or None where
    the runtime does not say (CPU)."""
    try:
        device = next(d for d in mesh.devices.flat if d.process_index == jax.process_index())
        stats = device.memory_stats()
    except Exception:  # noqa: BLE001 - no statistics is "unknown", never an error
        return None
    if not stats or "bytes_limit" not in stats:
        return None
    return int(stats["bytes_limit"]), int(stats.get("bytes_in_use", 0))


def program_bytes(compiled) -> int | None:
    """Memory a compiled program allocates when called (temporaries and outputs; its arguments,
    the weights, are already resident)."""
    mem = compiled.memory_analysis()
    if mem is None:
        return None
    return int(mem.temp_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes)


def remat_ladder(policy: str) -> tuple[str, ...]:
    """The policy, then those that keep less (`jaxsteer.models.remat.ladder`)."""
    return remat.ladder(policy)


def every_row(inputs: PromptInputs, max_tokens: int) -> PromptInputs:
    """``inputs`` differentiating every row of the text embedding instead of the word's."""
    rows = tuple(range(max_tokens))
    return PromptInputs(inputs.cond, inputs.uncond, pad_rows(rows), len(rows))


def pad_rows(rows: tuple[int, ...], size: int | None = None) -> np.ndarray:
    """Pads the row list by repeating its last row, to ``size`` entries (a survey's one bucket)
    or, without ``size`` or with more rows than it, to a power of two (fewer distinct programs;
    a repeated row just gets the same gradient again, sliced off on the host)."""
    n = 1 << (len(rows) - 1).bit_length()
    if size is not None and size >= len(rows):
        n = size
    return np.asarray(list(rows) + [rows[-1]] * (n - len(rows)), np.int32)


def check_timestep(timestep: int | None, pool: bool) -> None:
    """A start timestep noises a pool image to it; pool-free pairs start from pure noise, which a
    later first step would denoise as if it were x_t at that timestep."""
    if timestep is not None and not pool:
        raise UserError("--timestep noises a pool image to that timestep: it needs --pool")


class Collector:
    """Holds one compiled kernel for a model, settings and mesh; call it for any prompt."""

    def __init__(self, bundle: ModelBundle, sampler: SamplerConfig, mesh: Mesh, *,
                 pool: bool = True, feature: str | Callable = "latents",
                 timestep: int | None = None, unroll: bool = False,
                 param_sharding: str = "none"):
        """``param_sharding``: ``none`` replicates the weights on every device, ``fsdp`` splits
        the large ones over the mesh's model axis (`sharding.PARAM_RULES`); the batch is split
        over every device either way."""
        if isinstance(feature, str) and feature not in FEATURES:
            raise UserError(f"unknown --feature {feature!r}: use one of {', '.join(FEATURES)} "
                            "(or pass a feature function from Python)")
        check_timestep(timestep, pool)
        self.bundle, self.sampler, self.mesh = bundle, sampler, mesh
        model = bundle.model
        sched = sampler.schedule(model, start_timestep=timestep)
        if pool and not unroll:
            # The authors' default: a single denoiser call at the noisiest step.
            sched = jax.tree.map(lambda a: a[:1], sched)
        self.sched = sched
        self.spec = KernelSpec(model, pool=pool, use_cfg=sampler.use_cfg, feature=feature,
                               remat=sampler.remat,
                               # pool pairs never draw a start: one kernel for both presets
                               shared_noise=0.0 if pool else sampler.shared_noise)
        self.layout = sharding.param_layout(bundle.params, mesh, param_sharding)
        self.kernel = make_kernel(self.spec, mesh, self.layout)
        self.params = sharding.place_params(mesh, bundle.params, self.layout)
        self._fitted: dict[Any, Callable] = {}   # per batch shape: the program that fits
        self._encode = jit_encode_text(model)
        self.devices = sharding.data_size(mesh)

    def prepare(self, prompt: str, token: str, row_bucket: int | None = None) -> PromptInputs:
        """Tokenizes on the host (clear errors for bad prompts/words) and encodes the text once.

        ``row_bucket``: pad the word's token rows to this many (see `pad_rows`), so that words of
        different token counts share one compiled program.
        """
        model = self.bundle.model
        tokens = model.tokenize(prompt)
        rows = tokens.rows(token)
        cond = self._encode_one(tokens.ids_et)
        uncond = None
        if self.spec.use_cfg:
            uncond = self._encode_one(model.tokenize("", allow_empty=True).ids_et)
        return PromptInputs(cond=cond, uncond=uncond, rows_r=pad_rows(rows, row_bucket),
                            num_rows=len(rows))

    def _encode_one(self, ids_et: np.ndarray) -> TextCond:
        """One prompt's conditioning, encoded on the mesh and left there (replicated)."""
        ids = sharding.put_replicated(self.mesh, ids_et[None])
        return jax.tree.map(lambda a: a[0], self._encode(self.params, ids))

    def kernel_inputs(self, prompt: PromptInputs, key: jax.Array) -> KernelInputs:
        """The kernel's per-call inputs for one prompt, on the host (placed by `__call__`)."""
        return KernelInputs(cond=prompt.cond, uncond=prompt.uncond, rows_r=prompt.rows_r,
                            key=key, sched=self.sched,
                            guidance=np.float32(self.sampler.guidance))

    def __call__(self, prompt: PromptInputs, idx_p: np.ndarray, key: jax.Array,
                 a_pchw: np.ndarray | None = None, b_pchw: np.ndarray | None = None) -> jax.Array:
        """Dispatches one batch (asynchronously) and returns the device array [p_padded, r, d].

        The batch is padded to a multiple of the data-axis size by repeating its last pair;
        callers keep the first ``len(idx_p)`` rows and the first ``prompt.num_rows`` rows of r.
        """
        pad = lambda a: sharding.pad_batch(np.asarray(a, np.float32), self.devices)  # noqa: E731
        batch = PairBatch(sharding.pad_batch(np.asarray(idx_p, np.int32), self.devices))
        if self.spec.pool:
            batch = batch.replace(a=pad(a_pchw), b=pad(b_pchw))
        # Compiled programs take only arguments placed as they were compiled for (sharding.py).
        inputs = sharding.put_replicated(self.mesh, self.kernel_inputs(prompt, key))
        placed = sharding.put_batch(self.mesh, batch)
        return self._program(inputs, placed)(self.params, inputs, placed)

    def iter_gradients(self, prompt: PromptInputs, batches: Iterable[np.ndarray], key: jax.Array,
                       pool: np.ndarray | None = None, pairs: np.ndarray | None = None, *,
                       pad_to: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Gradients batch by batch with one batch in flight (the next is dispatched before the
        previous one is copied to the host): yields (idx, grads [len(idx), num_rows, d] float32).

        Args:
          batches: pair indices [b] per call (folded into the key: pair j's gradient is the same
            in any batch).
          pool, pairs: pool latents [m, c, h, w] and the pair table [n, 2] of pool indices (A, B)
            that pair j reads; both None for the pool-free kernel.
          pad_to: pad every batch to this many pairs by repeating its last pair, so that a short
            last batch reuses the program of the full ones.
        """
        def dispatch(idx: np.ndarray):
            call = idx if pad_to is None else np.concatenate(
                [idx, np.repeat(idx[-1:], max(pad_to - len(idx), 0))])
            a = b = None
            if pool is not None:
                a, b = pool[pairs[call, 0]], pool[pairs[call, 1]]
            return idx, self(prompt, call, key, a, b)

        pending = None
        for idx in itertools.chain(batches, [None]):
            nxt = dispatch(np.asarray(idx)) if idx is not None else None
            if pending is not None:
                done, grads = pending
                yield done, np.asarray(grads)[: len(done), : prompt.num_rows].astype(np.float32)
            pending = nxt

    def gradients(self, prompt: PromptInputs, idx_n: np.ndarray, key: jax.Array,
                  pool: np.ndarray | None = None, pairs: np.ndarray | None = None, *,
                  batch: int, pad: bool = False) -> np.ndarray:
        """[n, num_rows, d] host gradients of the pairs ``idx_n``, ``batch`` pairs per call
        (`iter_gradients`; ``pad``: the last batch padded to a full one)."""
        idx_n = np.asarray(idx_n)
        chunks = [idx_n[s:s + batch] for s in range(0, len(idx_n), batch)]
        return np.concatenate([g for _, g in self.iter_gradients(
            prompt, chunks, key, pool, pairs, pad_to=batch if pad else None)])

    def _program(self, inputs: KernelInputs, batch: PairBatch) -> Callable:
        """The kernel, or on a device that reports its memory, the first program of the remat
        ladder (`remat_ladder`) that fits: a batch too large for the chosen policy recomputes
        more instead of running out of memory (with a note on stderr), and one too large for
        any policy is a clear error before anything runs."""
        shapes = jax.tree.map(lambda a: (a.shape, a.dtype), (inputs.rows_r, batch))
        key = (jax.tree.structure(batch), tuple(jax.tree.leaves(shapes)))
        if key not in self._fitted:   # device memory is asked once per shape, not per call
            memory = device_memory(self.mesh)
            self._fitted[key] = self.kernel if memory is None else self._fit(inputs, batch,
                                                                             *memory)
        return self._fitted[key]

    def _fit(self, inputs: KernelInputs, batch: PairBatch, limit: int, in_use: int) -> Callable:
        free = MEMORY_HEADROOM * (limit - in_use)
        model = self.spec.model
        has_policy = any(f.name == "remat_policy" for f in dataclasses.fields(model))
        policies = remat_ladder(model.remat_policy) if has_policy else ("(the model's)",)
        pairs, needs = len(batch.idx_p), []
        for policy in policies:
            spec = (dataclasses.replace(self.spec, model=dataclasses.replace(
                model, remat_policy=policy)) if has_policy else self.spec)
            compiled = make_kernel(spec, self.mesh, self.layout).lower(self.params, inputs,
                                                                      batch).compile()
            need = program_bytes(compiled)
            if need is None or need <= free:
                if needs:
                    print(f"jaxsteer: {pairs} pairs per call need {needs[0] / 2**30:.1f} GiB "
                          f"with remat policy {policies[0]} ({free / 2**30:.1f} GiB free): "
                          f"using {policy} ({need / 2**30:.1f} GiB)", file=sys.stderr)
                return compiled
            needs.append(need)
        raise UserError(f"{pairs} pairs per call need {needs[-1] / 2**30:.1f} GiB of device "
                        f"memory even with remat policy {policies[-1]} ({free / 2**30:.1f} GiB "
                        "free): lower --batch")



@dataclasses.dataclass(frozen=True)
class CollectRun:
    sampler: SamplerConfig = opt(default_factory=SamplerConfig, help="sampler settings")
    model: ModelConfig = opt(default_factory=ModelConfig, help="which model, and how to load it")
    prompt: str = opt("", "the text prompt")
    token: str = opt("", "the word whose token rows are differentiated (every occurrence; "
                     "several words if it has spaces)")
    pool: str = opt("none", "sample-pool folder from `jaxsteer sample`, or 'none' for fresh "
                    "generations from two seeds per pair, differentiated end to end")
    pairs: int = opt(64, "number of gradients (authors: 10k-50k)")
    timestep: int | None = opt(None, "training timestep to noise A to; default: the first "
                               "(noisiest) step of the K-step schedule")
    unroll: bool = opt(False, "run the remaining steps from the noised A instead of one "
                       "denoiser call (authors: one call)")
    feature: str = opt("latents", "loss space: latents | pixels (decoded by the VAE)",
                       choices=FEATURES)
    batch: int = opt(16, "pairs per compiled call and per shard (padded to the device count)")
    seed: int = opt(0, "seed of the pair draw and of the noise")
    devices: int = opt(-1, "devices to use; -1 = all local devices")
    param_sharding: str = opt("none", "none: every device holds all weights | fsdp: each "
                              "device holds a slice of every large weight, gathered per layer "
                              "(models too large for one chip: Flux on 16 GB chips)",
                              choices=sharding.PARAM_SHARDINGS)
    out: Path = opt(Path("runs/grads"), "output folder (resumed if it holds the same run)")

    @staticmethod
    def input_presets(values: dict) -> dict:
        """Defaults read from the inputs the flags name: the pool's sampler settings."""
        return pool_sampler_settings(values)

    def __post_init__(self):
        check_sections(self)
        if self.pairs < 1:
            raise UserError(f"--pairs must be positive, got {self.pairs}")
        if self.batch < 1:
            raise UserError(f"--batch must be positive, got {self.batch}")
        if self.param_sharding not in sharding.PARAM_SHARDINGS:
            raise UserError(f"--param-sharding must be one of "
                            f"{', '.join(sharding.PARAM_SHARDINGS)}, got {self.param_sharding!r}")
        check_timestep(self.timestep, self.pool != "none")   # here: before a model loads


def draw_pairs(seed: int, n: int, pool_size: int) -> np.ndarray:
    """[n, 2] distinct (A, B) pool indices. Pair j is the same for every n >= j (prefix-stable:
    each column comes from its own generator), so a run can be extended later."""
    if pool_size < 2:
        raise UserError(f"the pool has {pool_size} sample(s); pairs need at least 2")
    a = np.random.default_rng([seed, 0]).integers(0, pool_size, n)
    b = (a + np.random.default_rng([seed, 1]).integers(1, pool_size, n)) % pool_size
    return np.stack([a, b], 1).astype(np.int64)


def _check_pool(cfg: CollectRun, manifest: dict, model: DiffusionModel) -> None:
    ident = manifest["identity"]
    if ident["model"] != cfg.model.name or list(ident["latent_shape"]) != list(model.latent_shape):
        raise UserError(f"--pool {cfg.pool} was sampled from model {ident['model']!r}, "
                        f"not {cfg.model.name!r}")
    if ident["prompt"] != cfg.prompt:
        raise UserError(f"--pool {cfg.pool} was sampled for the prompt {ident['prompt']!r}, "
                        f"not {cfg.prompt!r}")


def run(cfg: CollectRun) -> dict:
    """Collects (or finishes) ``cfg.pairs`` gradients into the store ``cfg.out``."""
    records.check_out(cfg.out)
    bundle = cfg.model.load_model()
    model = bundle.model
    rows = model.tokenize(cfg.prompt).rows(cfg.token)  # bad prompt / word fail before any write
    pool_latents = None
    if cfg.pool != "none":
        pool_latents, pool_manifest = read_pool(cfg.pool)
        _check_pool(cfg, pool_manifest, model)
        differs = pool_differences(cfg.sampler, pool_manifest)
        if differs:
            print(f"jaxsteer collect: sampler settings differ from the pool {cfg.pool}: "
                  + ", ".join(differs), file=sys.stderr)
        pairs = draw_pairs(cfg.seed, cfg.pairs, len(pool_latents))
    else:
        pairs = np.stack([2 * np.arange(cfg.pairs), 2 * np.arange(cfg.pairs) + 1], 1)
    # fsdp: every device on the model axis (each holds 1/n of the large weights) and, as
    # always, its own share of the pairs.
    mesh = sharding.local_mesh(cfg.devices, model=-1 if cfg.param_sharding == "fsdp" else 1)
    collector = Collector(bundle, cfg.sampler, mesh, pool=pool_latents is not None,
                          feature=cfg.feature, timestep=cfg.timestep, unroll=cfg.unroll,
                          param_sharding=cfg.param_sharding)
    identity = {"model": cfg.model.name, "prompt": cfg.prompt, "token": cfg.token,
                "token_rows": list(rows), "embed_dim": model.embed_dim, "feature": cfg.feature,
                "pool": str(cfg.pool), "steps": cfg.sampler.steps,
                "scheduler": cfg.sampler.scheduler,
                "timesteps": np.asarray(collector.sched.t_s).tolist(), "unroll": cfg.unroll,
                "guidance": cfg.sampler.guidance, "seed": cfg.seed,
                "dtype": bundle.info["dtype"],
                # another jax draws other numbers from the same seed: no resuming across them
                "jax": jax.__version__}
    meta = {"config": to_dict(cfg), "model_info": bundle.info,
            "timestep": int(collector.sched.t_s[0])}
    store = ShardStore.open(cfg.out, "gradients", identity, meta, cfg.batch, cfg.pairs)
    with store.writing():  # one writer per folder: a second `collect` on it is refused
        return _collect(cfg, collector, store, pairs, pool_latents, rows)


def _collect(cfg: CollectRun, collector: Collector, store: ShardStore, pairs: np.ndarray,
             pool_latents: np.ndarray | None, rows: tuple[int, ...]) -> dict:
    """Collects the store's missing (or damaged) shards; the caller holds the folder's lock."""
    model = collector.bundle.model
    prompt = collector.prepare(cfg.prompt, cfg.token)
    todo = store.todo()
    start, done = time.perf_counter(), 0
    bar = progress.bar(total=sum(len(store.shard_range(i)) for i in todo), desc="collecting",
                       unit="grad")
    shards = [np.asarray(store.shard_range(i)) for i in todo]
    # One shard per batch, written while the next batch runs.
    for i, (idx, g) in zip(todo, collector.iter_gradients(
            prompt, shards, jax.random.key(cfg.seed), pool_latents, pairs), strict=True):
        store.write_shard(i, {"grads": g, "pairs": pairs[idx], "index": idx.astype(np.int64)})
        done += len(idx)
        bar.update(len(idx))
    bar.close()
    seconds = time.perf_counter() - start
    return {"out": str(cfg.out), "gradients": store.total, "collected_now": done,
            "seconds": seconds, "grads_per_s": done / seconds if done else 0.0,
            "shape": [store.total, len(rows), model.embed_dim]}
