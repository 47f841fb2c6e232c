"""jaxsteer's UNet against diffusers' at full size, random weights, float32, on the GPU.

For each architecture (SD 2.1 / SD-Turbo and SDXL by default): diffusers builds the UNet with
random weights (norm scales and biases randomised too), saves it with ``save_pretrained``,
jaxsteer loads the folder through its torch-free converter, and both compute the UNet output
and the gradient of a fixed linear loss w.r.t. the text embedding on the same inputs, in float32
with TF32 off on both sides. Prints and writes (``--out``) the relative max error of the output
and the cosine of the gradients. Needs torch and diffusers (not a CI test):

    PYTHONPATH=/tmp/site2:$PWD python3 scripts/gpu_compare_full.py --out $OUT/compare.json

SDXL at batch 2 ran out of memory on an H200 (float32, no remat); what ran (2026-12-02, 350 s:
34 s PyTorch, 310 s jaxsteer's load, trace, compile and run):

    TMPDIR=/dev/shm XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONPATH=/tmp/site2:$PWD \
      python3 scripts/gpu_compare_full.py --archs sdxl --batch 1 --out $OUT/compare_sdxl.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _torch_side(arch: str, folder: Path, size: int, batch: int, seed: int) -> dict:
    import torch
    from diffusers import UNet2DConditionModel
    from make_torch_fixtures import _randomise_norms

    from jaxsteer.models.architectures import ARCHITECTURES

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    cfg = ARCHITECTURES[arch].unet_config()
    unet = UNet2DConditionModel(**cfg).eval()
    _randomise_norms(torch, unet, gen)
    unet.save_pretrained(folder, safe_serialization=True)
    print(f"{arch}: built and saved", flush=True)
    unet = unet.cuda()
    lat = size // 8
    io = {"sample": torch.randn(batch, 4, lat, lat, generator=gen),
          "timesteps": torch.tensor([999.0, 500.0][:batch]),
          "emb": torch.randn(batch, 77, cfg["cross_attention_dim"], generator=gen),
          "weight": torch.randn(batch, 4, lat, lat, generator=gen)}
    added = None
    if cfg.get("addition_embed_type") == "text_time":
        io["text_embeds"] = torch.randn(batch, 1280, generator=gen)
        io["time_ids"] = torch.tensor([[size, size, 0.0, 0.0, size, size]] * batch)
        added = {"text_embeds": io["text_embeds"].cuda(), "time_ids": io["time_ids"].cuda()}
    emb = io["emb"].cuda().requires_grad_(True)
    t0 = time.perf_counter()
    out = unet(io["sample"].cuda(), io["timesteps"].cuda(), encoder_hidden_states=emb,
               added_cond_kwargs=added, return_dict=False)[0]
    (out * io["weight"].cuda()).sum().backward()
    torch.cuda.synchronize()
    res = {k: v.numpy() for k, v in io.items()}
    res.update(out=out.detach().cpu().numpy(), grad=emb.grad.cpu().numpy(),
               torch_s=time.perf_counter() - t0, params=sum(p.numel() for p in unet.parameters()))
    del unet
    torch.cuda.empty_cache()
    return res


def _jax_side(folder: Path, ref: dict) -> tuple[np.ndarray, np.ndarray]:
    import jax
    import jax.numpy as jnp

    from jaxsteer.models.nn.load import load_unet

    module, params = load_unet(folder)
    added = None
    if "time_ids" in ref:
        added = {"text_embeds": jnp.asarray(ref["text_embeds"]),
                 "time_ids": jnp.asarray(ref["time_ids"])}

    def loss(emb):
        out = module.apply({"params": params}, jnp.asarray(ref["sample"]),
                           jnp.asarray(ref["timesteps"]), emb, added)
        return jnp.sum(out * jnp.asarray(ref["weight"])), out

    with jax.default_matmul_precision("highest"):
        (_, out), grad = jax.jit(jax.value_and_grad(loss, has_aux=True))(jnp.asarray(ref["emb"]))
    return np.asarray(out), np.asarray(grad)


def _say(t0: float, what: str) -> None:  # where the time goes, should a call be cut
    print(f"[{time.perf_counter() - t0:.0f} s] {what}", flush=True)


def compare(arch: str, size: int, batch: int, seed: int) -> dict:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:   # TMPDIR=/dev/shm keeps the 10 GB SDXL in RAM
        ref = _torch_side(arch, Path(tmp), size, batch, seed)
        _say(t0, f"{arch}: torch side done")
        out, grad = _jax_side(Path(tmp), ref)
        _say(t0, f"{arch}: jax side done")
    g, gr = grad.ravel().astype(np.float64), ref["grad"].ravel().astype(np.float64)
    return {"arch": arch, "size": size, "batch": batch, "params": int(ref["params"]),
            "out_rel_max_err": float(np.abs(out - ref["out"]).max() / np.abs(ref["out"]).max()),
            "grad_rel_max_err": float(np.abs(grad - ref["grad"]).max()
                                      / np.abs(ref["grad"]).max()),
            "grad_cosine": float(g @ gr / np.linalg.norm(g) / np.linalg.norm(gr))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", default="sd-turbo,sdxl")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    sizes = {"sdxl": 1024}
    results = []
    for arch in args.archs.split(","):
        r = compare(arch, sizes.get(arch, 512), args.batch, args.seed)
        print(json.dumps(r), flush=True)
        results.append(r)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return 0 if all(r["grad_cosine"] >= 0.999 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
