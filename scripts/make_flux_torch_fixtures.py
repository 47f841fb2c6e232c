"""Writes the PyTorch reference fixtures that tests/models/nn/test_flux_torch_fixtures.py checks.

Run once on a machine with torch and current diffusers / transformers (not needed in CI):

    python3 scripts/make_flux_torch_fixtures.py --out tests/fixtures/torch_flux

Tiny random models of Flux's networks are built in PyTorch (diffusers' FluxTransformer2DModel
without and with the guidance embedding, transformers' T5EncoderModel, the 16-channel Flux
AutoencoderKL without quant convs), saved as the libraries save them (``save_pretrained``:
config.json plus safetensors; bf16 / fp16 files, sharded with an index where marked), and their
inputs, float32 outputs and the gradient of a fixed linear loss w.r.t. the text embedding saved
as ``io.safetensors``. The helpers (rounding weights to their file dtype first, saving) are those
of scripts/make_torch_fixtures.py. Everything runs in float32 on the CPU, in seconds.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_torch_fixtures as base  # the SD fixtures' helpers

FLUX = {"patch_size": 1, "in_channels": 16, "num_layers": 2, "num_single_layers": 2,
        "attention_head_dim": 8, "num_attention_heads": 2, "joint_attention_dim": 24,
        "pooled_projection_dim": 20, "guidance_embeds": False, "axes_dims_rope": [2, 2, 4]}
T5 = {"vocab_size": 64, "d_model": 32, "d_kv": 8, "d_ff": 48, "num_layers": 3, "num_heads": 4,
      "relative_attention_num_buckets": 8, "relative_attention_max_distance": 16,
      "feed_forward_proj": "gated-gelu", "dropout_rate": 0.0, "layer_norm_epsilon": 1e-6,
      "is_encoder_decoder": False, "use_cache": False}
VAE = {"in_channels": 3, "out_channels": 3, "latent_channels": 16, "block_out_channels": [32, 32],
       "layers_per_block": 1, "norm_num_groups": 32, "sample_size": 16,
       "down_block_types": ["DownEncoderBlock2D"] * 2, "up_block_types": ["UpDecoderBlock2D"] * 2,
       "use_quant_conv": False, "use_post_quant_conv": False, "scaling_factor": 0.3611,
       "shift_factor": 0.1159}
CASES = {
    "flux_schnell": {"kind": "flux", "config": FLUX, "dtype": "bfloat16", "shard": "60KB"},
    "flux_dev": {"kind": "flux", "config": FLUX | {"guidance_embeds": True}, "dtype": "float32"},
    "t5": {"kind": "t5", "config": T5, "dtype": "float32", "shard": "40KB"},
    "vae_flux": {"kind": "vae", "config": VAE, "dtype": "float16"},
}
BATCH, TOKENS, LATENT = 2, 7, 8  # latents [BATCH, 4, 8, 8] -> 16 packed tokens of 16 channels


def _randomise_norms(torch, model, gen) -> None:
    """GroupNorm / LayerNorm as the SD fixtures do, and every 1-D ``*norm*`` weight (RMSNorm,
    T5LayerNorm) 1 + N(0, 0.1): a scale left at its default would hide a converter mix-up."""
    base._randomise_norms(torch, model, gen)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight") and p.ndim == 1:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))


def _build(torch, kind: str, config: dict):
    if kind == "flux":
        from diffusers import FluxTransformer2DModel
        return FluxTransformer2DModel(**config)
    if kind == "vae":
        from diffusers import AutoencoderKL
        return AutoencoderKL(**config)
    from transformers import T5Config, T5EncoderModel
    model = T5EncoderModel(T5Config(**config))
    try:
        model.set_attn_implementation("eager")
    except (AttributeError, TypeError, ValueError):
        pass
    return model


def _flux_io(torch, model, config: dict, gen) -> dict:
    h = w = LATENT // 2
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    img_ids = torch.stack([torch.zeros_like(rows), rows, cols], -1).reshape(-1, 3).float()
    txt_ids = torch.zeros(TOKENS, 3)
    hidden = torch.randn(BATCH, h * w, config["in_channels"], generator=gen)
    emb = torch.randn(BATCH, TOKENS, config["joint_attention_dim"], generator=gen)
    pooled = torch.randn(BATCH, config["pooled_projection_dim"], generator=gen)
    sigma = torch.tensor([1.0, 0.3])
    io = {"hidden_states": hidden, "encoder_hidden_states": emb.clone(), "pooled": pooled,
          "sigma": sigma, "img_ids": img_ids, "txt_ids": txt_ids}
    guidance = None
    if config["guidance_embeds"]:
        guidance = io["guidance"] = torch.tensor([3.5, 1.5])
    weight = torch.randn(BATCH, h * w, config["in_channels"], generator=gen)
    emb = emb.clone().requires_grad_(True)
    out = model(hidden_states=hidden, encoder_hidden_states=emb, pooled_projections=pooled,
                timestep=sigma, img_ids=img_ids, txt_ids=txt_ids, guidance=guidance,
                return_dict=False)[0]
    (out * weight).sum().backward()
    io.update(loss_weight=weight, out=out.detach(), grad_encoder_hidden_states=emb.grad)
    return io


def _t5_io(torch, model, config: dict, gen) -> dict:
    ids = torch.randint(2, config["vocab_size"], (BATCH, 12), generator=gen)
    ids[0, 9], ids[0, 10:] = 1, 0  # "</s>" then padding, which FluxPipeline encodes too
    with torch.no_grad():
        out = model(input_ids=ids).last_hidden_state
    return {"input_ids": ids.to(torch.int32), "last_hidden_state": out}


def make_case(torch, name: str, case: dict, out: Path, seed: int) -> dict:
    from safetensors.torch import save_file

    folder = out / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = _build(torch, case["kind"], case["config"]).eval()
    _randomise_norms(torch, model, gen)
    base._round_weights(torch, model, getattr(torch, case["dtype"]))
    io_fn = {"flux": _flux_io, "t5": _t5_io, "vae": base._vae_io}
    io = io_fn[case["kind"]](torch, model, case["config"], gen)
    base._save_weights(torch, model, folder, case)
    save_file({k: v.detach().contiguous() for k, v in io.items()}, str(folder / "io.safetensors"))
    return {"kind": case["kind"], "dtype": case["dtype"],
            "params": sum(p.numel() for p in model.parameters())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/torch_flux"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import diffusers
    import torch
    import transformers

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_default_device("cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = {"cases": {}}
    for i, name in enumerate(CASES):
        manifest["cases"][name] = make_case(torch, name, CASES[name], args.out, args.seed + i)
        print(f"{name}: {manifest['cases'][name]['params']} parameters", flush=True)
    manifest["versions"] = {"torch": torch.__version__, "diffusers": diffusers.__version__,
                            "transformers": transformers.__version__,
                            "python": platform.python_version()}
    manifest["made_by"] = "scripts/make_flux_torch_fixtures.py"
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{total / 2 ** 20:.2f} MiB in {args.out}")
    if total > base.MAX_BYTES:
        print("fixtures exceed the size limit: shrink the configs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
