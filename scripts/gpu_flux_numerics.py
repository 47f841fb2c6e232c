"""On the GPU box: jaxsteer's Flux transformer against diffusers' at full size, and the Flux
benchmark's PyTorch reference against jaxsteer's kernel (issue 18, item 4).

    PYTHONPATH=/tmp/site2:$PWD python3 scripts/gpu_flux_numerics.py --out $OUT/flux_numerics.json

1. **Full size, float32.** diffusers' ``FluxTransformer2DModel`` with FLUX.1 [schnell]'s config
   (12B parameters; diffusers' own random initialisation, the q/k RMSNorm scales drawn as
   1 + N(0, 0.1) so a scale mix-up would show) is built on the GPU in float32 (TF32 off). One
   forward at a reduced resolution (a 32x32 latent: 256 image tokens, beside all 512 text
   tokens; the weights, not the token count, are what is full size), and the gradient of a fixed
   random linear loss of the output w.r.t. the text embedding. Its weights then go to JAX on the
   GPU without a host copy (DLPack; each linear kernel transposed in PyTorch first, its PyTorch
   copy released), and jaxsteer's transformer computes the same under "highest" matmul
   precision. Reported: the output's max abs error over its max magnitude and relative L2
   error, and the gradient's cosine (target >= 0.999) and relative L2 error.
2. **The benchmark's reference is the same computation.** On ``tiny-flux`` (float32, the same
   weights on both sides, jaxsteer's pair noise handed to PyTorch): the gradients of
   `jaxsteer.benchmarks.flux_reference.make_grad_fn` against those of the Collector's kernel
   (`jaxsteer.benchmarks.common`, what `bench throughput` times) for 2 pairs.

Each check's result is written to ``--out`` as soon as it exists.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")   # PyTorch shares the GPU

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_threefry_partitionable", True)

LATENT = 32      # latent side of the full-size check: 16x16 = 256 packed image tokens
TOKENS = 512


def stats(ours: np.ndarray, ref: np.ndarray) -> dict:
    ours, ref = np.asarray(ours, np.float64).ravel(), np.asarray(ref, np.float64).ravel()
    return {"max_abs_err": float(np.abs(ours - ref).max()),
            "ref_max_abs": float(np.abs(ref).max()),
            "max_err_over_ref_max": float(np.abs(ours - ref).max() / np.abs(ref).max()),
            "rel_l2": float(np.linalg.norm(ours - ref) / np.linalg.norm(ref)),
            "cosine": float(ours @ ref / (np.linalg.norm(ours) * np.linalg.norm(ref))),
            "finite": bool(np.isfinite(ours).all())}


def torch_to_jax_params(torch_model, shapes) -> dict:
    """jaxsteer's parameter tree holding the PyTorch model's weights, moved GPU to GPU.

    Names follow `jaxsteer.models.nn.convert.pt_name`; each linear weight [out, in] is
    transposed to a kernel [in, out] in PyTorch, handed over by DLPack, and its PyTorch original
    freed, so the GPU never holds three copies.
    """
    import torch

    from jaxsteer.models.nn.convert import pt_name

    state = dict(torch_model.named_parameters())
    leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    out = []
    for path, shape in leaves:
        parts = [str(getattr(k, "key", k)) for k in path]
        p = state.pop(pt_name(parts))
        with torch.no_grad():
            t = p.detach().T.contiguous() if parts[-1] == "kernel" else p.detach().clone()
            p.data = torch.empty(0, device=p.device, dtype=p.dtype)
        arr = jax.dlpack.from_dlpack(t)
        if tuple(arr.shape) != tuple(shape.shape):
            raise ValueError(f"{'/'.join(parts)}: {arr.shape} != {shape.shape}")
        out.append(arr)
    if state:
        raise ValueError(f"{len(state)} PyTorch weights unused, e.g. {sorted(state)[:3]}")
    return jax.tree_util.tree_unflatten(treedef, out)


def full_size(log) -> dict:
    import torch

    from jaxsteer.benchmarks.flux_reference import build_transformer, position_ids
    from jaxsteer.models.architectures import ARCHITECTURES, param_shapes
    from jaxsteer.models.nn.flux import FluxConfig, FluxTransformer2DModel, image_ids

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    t0 = time.perf_counter()
    tr = build_transformer("flux-schnell", dtype=torch.float32)
    gen = torch.Generator("cuda").manual_seed(0)
    with torch.no_grad():
        for name, p in tr.named_parameters():
            if "norm" in name and name.endswith("weight") and p.ndim == 1:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen, device="cuda"))
    torch.cuda.synchronize()
    result = {"params": sum(p.numel() for p in tr.parameters()), "latent": LATENT,
              "image_tokens": (LATENT // 2) ** 2, "text_tokens": TOKENS,
              "torch_build_s": time.perf_counter() - t0}
    cfg = ARCHITECTURES["flux-schnell"]
    hidden = torch.randn(1, (LATENT // 2) ** 2, 64, generator=gen, device="cuda")
    emb = torch.randn(1, TOKENS, cfg.embed_dim, generator=gen, device="cuda")
    pooled = torch.randn(1, cfg.pooled_dim, generator=gen, device="cuda")
    weight = torch.randn(1, (LATENT // 2) ** 2, 64, generator=gen, device="cuda")
    sigma = torch.tensor([0.7], device="cuda")
    img_ids, txt_ids = position_ids(LATENT, LATENT, TOKENS)
    t0 = time.perf_counter()
    e = emb.clone().requires_grad_(True)
    out = tr(hidden_states=hidden, encoder_hidden_states=e, pooled_projections=pooled,
             timestep=sigma, img_ids=img_ids, txt_ids=txt_ids, return_dict=False)[0]
    (grad_t,) = torch.autograd.grad((out * weight).sum(), e)
    torch.cuda.synchronize()
    result["torch_s"] = time.perf_counter() - t0
    ref_out, ref_grad = out.detach().cpu().numpy(), grad_t.cpu().numpy()
    inputs = [jnp.asarray(t.cpu().numpy()) for t in (hidden, emb, pooled, weight, sigma)]
    del out, grad_t, e
    torch.cuda.empty_cache()
    log(f"torch: {result['params'] / 1e9:.2f}B parameters, forward + backward "
        f"{result['torch_s']:.1f} s")

    module = FluxTransformer2DModel(FluxConfig.from_diffusers(cfg.flux_config()),
                                    dtype=jnp.float32, attention="xla")
    t0 = time.perf_counter()
    params = torch_to_jax_params(tr, param_shapes(module, jnp.float32))
    del tr
    torch.cuda.empty_cache()
    result["handover_s"] = time.perf_counter() - t0
    hidden_j, emb_j, pooled_j, weight_j, sigma_j = inputs
    ids_img, ids_txt = image_ids(LATENT, LATENT), jnp.zeros((TOKENS, 3), jnp.int32)

    def loss(e, params):
        out = module.apply({"params": params}, hidden_j, e, pooled_j, sigma_j, ids_img, ids_txt)
        return jnp.sum(out * weight_j), out

    with jax.default_matmul_precision("highest"):
        t0 = time.perf_counter()
        step = jax.jit(jax.value_and_grad(loss, has_aux=True)).lower(emb_j, params).compile()
        result["jax_compile_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        (_, out_j), grad_j = jax.block_until_ready(step(emb_j, params))
        result["jax_s"] = time.perf_counter() - t0
    result["output"] = stats(out_j, ref_out)
    result["gradient"] = stats(grad_j, ref_grad)
    result["gradient_cosine_ok"] = result["gradient"]["cosine"] >= 0.999
    del params
    return result


def reference_equivalence(log) -> dict:
    """`flux_reference.make_grad_fn` == the Collector's kernel on tiny-flux, 2 pairs, float32."""
    import torch

    from jaxsteer import sharding
    from jaxsteer.benchmarks import CONFIGS, common
    from jaxsteer.benchmarks.flux_reference import build_transformer, flux_schedule, make_grad_fn
    from jaxsteer.models.architectures import ARCHITECTURES
    from jaxsteer.models.nn.convert import flax_to_pt

    name, batch = "tiny-flux-1", 2
    arch = ARCHITECTURES[CONFIGS[name].arch]
    mesh = sharding.make_mesh(devices=jax.devices()[:1])
    models = common.Models(0, mesh)
    with jax.default_matmul_precision("highest"):
        coll = common.collector(models, name, "float32", "xla", "none", mesh)
        inputs, placed = common.kernel_inputs(coll, name, batch, 0)
        ours = np.asarray(coll.kernel(coll.params, inputs, placed))
    # The pairs' noise exactly as `pair_loss` draws it.
    keys = jax.vmap(jax.random.fold_in, (None, 0))(inputs.key, jnp.arange(batch))
    noise = np.asarray(jax.vmap(lambda k, x: jax.random.normal(jax.random.fold_in(k, 0),
                                                                x.shape, x.dtype))(
        keys, placed.a))
    torch.backends.cuda.matmul.allow_tf32 = False
    tr = build_transformer(CONFIGS[name].arch, dtype=torch.float32)
    state = {k: torch.from_numpy(np.asarray(v, np.float32))
             for k, v in flax_to_pt(jax.device_get(coll.params["transformer"])).items()}
    tr.load_state_dict(state, strict=True)
    dev = "cuda"
    as_t = lambda a: torch.from_numpy(np.asarray(a, np.float32)).to(dev)  # noqa: E731
    fn = make_grad_fn(tr, flux_schedule(CONFIGS[name]), as_t(inputs.cond.emb),
                      as_t(inputs.cond.extra["pooled"]), arch.sample_size)
    theirs = fn(as_t(placed.a), as_t(placed.b), as_t(noise)).cpu().numpy()
    result = {"config": name, "pairs": batch, **stats(ours, theirs)}
    log(f"reference equivalence: cosine {result['cosine']:.6f}, rel L2 {result['rel_l2']:.2e}")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("flux_numerics.json"))
    ap.add_argument("--skip-full", action="store_true", help="only the tiny equivalence check")
    args = ap.parse_args()
    import diffusers
    import torch

    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "diffusers": diffusers.__version__, "jax": jax.__version__}

    def save():
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))

    def log(msg):
        print(f"flux numerics: {msg}", flush=True)

    for key, fn in (("reference_equivalence", reference_equivalence),
                    *(() if args.skip_full else (("full_size", full_size),))):
        try:
            result[key] = fn(log)
        except Exception as e:  # noqa: BLE001 - record it, keep the other check
            result[key] = {"status": f"error: {type(e).__name__}: {str(e)[:500]}"}
        log(f"{key}: {json.dumps(result[key])[:600]}")
        save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
