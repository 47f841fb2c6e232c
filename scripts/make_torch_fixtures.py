"""Writes the PyTorch reference fixtures that tests/models/nn/test_torch_fixtures.py checks.

Run once on a machine with torch and current diffusers / transformers (not needed in CI):

    python3 scripts/make_torch_fixtures.py --out tests/fixtures/torch

Tiny random models of each network jaxsteer ports (SD-like and SDXL-like UNet2DConditionModel,
CLIPTextModel, CLIPTextModelWithProjection, AutoencoderKL) are built in PyTorch, their weights
saved as the libraries save them (``save_pretrained``: config.json plus safetensors, fp16 as a
``variant``, bf16 sharded with an index), and their inputs, float32 outputs and the gradient of
a fixed linear loss w.r.t. the text embedding saved as ``io.safetensors``. Weights are rounded to
their file dtype before the outputs are computed, so the files hold exactly the weights the
outputs came from. Everything runs in float32 on the CPU (no TF32), in well under a minute.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
from pathlib import Path

# Each case: kind, constructor arguments, the dtype its weights are stored in, how they are
# saved. Configs are small enough for all files together to stay under 5 MB; together they cover
# conv and linear projections, int and per-block head counts, the SDXL text-time embedding,
# several transformer layers per block, both CLIP activations and end-token rules, projection.
UNET_SD = {"sample_size": 8, "in_channels": 4, "out_channels": 4,
           "block_out_channels": [32, 32], "layers_per_block": 1, "cross_attention_dim": 24,
           "attention_head_dim": 4, "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
           "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]}
UNET_SDXL = {"sample_size": 8, "in_channels": 4, "out_channels": 4,
             "block_out_channels": [32, 32, 32], "layers_per_block": 1,
             "cross_attention_dim": 40, "attention_head_dim": [2, 2, 4],
             "transformer_layers_per_block": [1, 2, 2], "use_linear_projection": True,
             "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
             "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
             "addition_embed_type": "text_time", "addition_time_embed_dim": 8,
             "projection_class_embeddings_input_dim": 24 + 6 * 8}
CLIP_L = {"vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3,
          "num_attention_heads": 4, "max_position_embeddings": 16, "hidden_act": "quick_gelu",
          "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1, "projection_dim": 32}
CLIP_BIGG = CLIP_L | {"hidden_size": 24, "intermediate_size": 48, "num_attention_heads": 2,
                      "hidden_act": "gelu", "eos_token_id": 63, "projection_dim": 24}
VAE = {"in_channels": 3, "out_channels": 3, "latent_channels": 4, "block_out_channels": [32, 32],
       "layers_per_block": 1, "norm_num_groups": 32, "sample_size": 16,
       "down_block_types": ["DownEncoderBlock2D"] * 2, "up_block_types": ["UpDecoderBlock2D"] * 2}
CASES = {
    "unet_sd": {"kind": "unet", "config": UNET_SD, "dtype": "float16", "variant": "fp16"},
    "unet_sdxl": {"kind": "unet", "config": UNET_SDXL, "dtype": "bfloat16", "shard": "400KB"},
    "clip_l": {"kind": "clip", "config": CLIP_L, "dtype": "float32"},
    "clip_bigg": {"kind": "clip_projection", "config": CLIP_BIGG, "dtype": "float32"},
    "vae": {"kind": "vae", "config": VAE, "dtype": "float16"},
}
BATCH, TOKENS = 2, 7
MAX_BYTES = 5 * 2 ** 20


def _randomise_norms(torch, model, gen) -> None:
    """Norm scales 1 + N(0, 0.1) and biases N(0, 0.1): with the default 1 / 0 a scale/bias mix-up
    in a converter would go unseen."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (torch.nn.GroupNorm, torch.nn.LayerNorm)) and mod.weight is not None:
                mod.weight.copy_(1 + 0.1 * torch.randn(mod.weight.shape, generator=gen))
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=gen))


def _round_weights(torch, model, dtype) -> None:
    """Rounds every parameter to ``dtype`` and back: the float32 model then holds the stored
    weights exactly."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).to(torch.float32))


def _build(torch, kind: str, config: dict):
    if kind == "unet":
        from diffusers import UNet2DConditionModel
        return UNet2DConditionModel(**config)
    if kind == "vae":
        from diffusers import AutoencoderKL
        return AutoencoderKL(**config)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    cls = CLIPTextModelWithProjection if kind == "clip_projection" else CLIPTextModel
    model = cls(CLIPTextConfig(**config))
    try:  # eager attention is the plainest reference; float32 SDPA agrees with it anyway
        model.set_attn_implementation("eager")
    except (AttributeError, TypeError, ValueError):
        pass
    return model


def _unet_io(torch, model, config: dict, gen) -> dict:
    sample = torch.randn(BATCH, config["in_channels"], 8, 8, generator=gen)
    t = torch.tensor([999.0, 321.0])
    emb = torch.randn(BATCH, TOKENS, config["cross_attention_dim"], generator=gen)
    io = {"sample": sample, "timesteps": t, "encoder_hidden_states": emb.clone()}
    added = None
    if config.get("addition_embed_type") == "text_time":
        text = (config["projection_class_embeddings_input_dim"]
                - 6 * config["addition_time_embed_dim"])
        added = {"text_embeds": torch.randn(BATCH, text, generator=gen),
                 "time_ids": torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]] * BATCH)}
        io.update(added)
    weight = torch.randn(BATCH, config["out_channels"], 8, 8, generator=gen)
    emb = emb.clone().requires_grad_(True)
    out = model(sample, t, encoder_hidden_states=emb, added_cond_kwargs=added,
                return_dict=False)[0]
    (out * weight).sum().backward()
    io.update(loss_weight=weight, out=out.detach(), grad_encoder_hidden_states=emb.grad)
    return io


def _clip_io(torch, model, config: dict, gen) -> dict:
    vocab, eos, n = config["vocab_size"], config["eos_token_id"], config["max_position_embeddings"]
    ids = torch.randint(3, vocab - 1, (BATCH, n), generator=gen)
    for row, end in enumerate((9, 5)):  # end token, then padding with it (as the pipelines pad)
        ids[row, end:] = eos
        if eos == 2:  # old configs: the pooled row is the one with the largest id
            ids[row, end] = vocab - 1
    with torch.no_grad():
        # transformers 4: both classes wrap a CLIPTextTransformer as .text_model; transformers 5:
        # CLIPTextModel is the transformer itself, the projection model wraps it as .text_model.
        inner = getattr(model, "text_model", model)
        base = inner(input_ids=ids, output_hidden_states=True)
        io = {"input_ids": ids.to(torch.int32), "last_hidden_state": base.last_hidden_state,
              "penultimate": base.hidden_states[-2], "pooled": base.pooler_output}
        if hasattr(model, "text_projection"):
            io["text_embeds"] = model(input_ids=ids).text_embeds
    return io


def _vae_io(torch, model, config: dict, gen) -> dict:
    size = config["sample_size"]
    x = torch.rand(BATCH, config["in_channels"], size, size, generator=gen) * 2 - 1
    with torch.no_grad():
        dist = model.encode(x).latent_dist
        return {"images": x, "mean": dist.mean, "logvar": dist.logvar,
                "decoded": model.decode(dist.mean).sample}


def _save_weights(torch, model, folder: Path, case: dict) -> None:
    dtype = getattr(torch, case["dtype"])
    kwargs = {"safe_serialization": True}
    if case.get("variant"):
        kwargs["variant"] = case["variant"]
    if case.get("shard"):
        kwargs["max_shard_size"] = case["shard"]
    try:
        model.to(dtype).save_pretrained(folder, **kwargs)
    except TypeError:  # transformers 5 always writes safetensors and dropped the argument
        kwargs.pop("safe_serialization")
        model.to(dtype).save_pretrained(folder, **kwargs)
    model.to(torch.float32)
    if not list(folder.glob("*.safetensors")):
        raise RuntimeError(f"save_pretrained wrote no safetensors into {folder}")
    if case["kind"].startswith("clip"):
        _hub_clip_names(folder)


def _hub_clip_names(folder: Path) -> None:
    """CLIP files as the hub holds them (``text_model.`` before every encoder name): transformers
    5 may save CLIPTextModel without the prefix; users' checkpoints all carry it."""
    from safetensors.numpy import load_file, save_file
    for path in folder.glob("*.safetensors"):
        state = load_file(path)
        if all(k.startswith(("text_model.", "text_projection.")) for k in state):
            continue
        save_file({k if k.startswith(("text_model.", "text_projection.")) else f"text_model.{k}":
                   v for k, v in state.items()}, path, metadata={"format": "pt"})


def make_case(torch, name: str, case: dict, out: Path, seed: int) -> dict:
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = _build(torch, case["kind"], case["config"]).to(torch.float32).eval()
    _randomise_norms(torch, model, gen)
    _round_weights(torch, model, getattr(torch, case["dtype"]))
    io = {"unet": _unet_io, "vae": _vae_io}.get(case["kind"], _clip_io)(
        torch, model, case["config"], gen)
    folder = out / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    _save_weights(torch, model, folder, case)
    save_file({k: v.detach().contiguous() for k, v in io.items()}, folder / "io.safetensors")
    return {"kind": case["kind"], "dtype": case["dtype"], "variant": case.get("variant"),
            "files": sorted(p.name for p in folder.iterdir()),
            "params": sum(p.numel() for p in model.parameters())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/torch"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), help="cases to (re)make")
    args = parser.parse_args(argv)

    import diffusers
    import torch
    import transformers

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.use_deterministic_algorithms(True, warn_only=True)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.setdefault("cases", {})
    for i, name in enumerate(sorted(CASES)):
        if args.only and name not in args.only:
            continue
        manifest["cases"][name] = make_case(torch, name, CASES[name], args.out, args.seed + i)
        print(f"{name}: {manifest['cases'][name]['params']} parameters", flush=True)
    manifest["versions"] = {"torch": torch.__version__, "diffusers": diffusers.__version__,
                            "transformers": transformers.__version__,
                            "python": platform.python_version()}
    manifest["made_by"] = "scripts/make_torch_fixtures.py"
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{total / 2 ** 20:.2f} MiB in {args.out}")
    if total > MAX_BYTES:
        print(f"fixtures exceed {MAX_BYTES / 2 ** 20:.0f} MiB: shrink the configs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
