"""Exported directions steer a diffusers pipeline as they steer jaxsteer (issue 21, item 1).

Run where torch and current diffusers are installed (the GPU box; everything here runs on the
CPU in float32, so both sides compute exactly, in about a minute):

    PYTHONPATH=/tmp/site2:$PWD python3 scripts/interop_roundtrip.py --out $OUT/interop

1. A tiny random SD pipeline is built **in PyTorch** (diffusers' UNet2DConditionModel and
   AutoencoderKL, transformers' CLIPTextModel with their own random initialisation, norm scales
   and biases randomised as the fixtures do; jaxsteer's character tokenizer; DDIM) and saved
   with ``StableDiffusionPipeline.save_pretrained`` (safetensors).
2. jaxsteer loads that folder (its own converter, no torch), collects 16 pool-free gradients
   of "monster", decomposes them (PCA) and exports the directions (``jaxsteer export``).
3. jaxsteer renders direction 0 at relative strength ``--alpha``, seed 0, 4 DDIM steps,
   guidance 2 (`jaxsteer.interop.render_exported`); diffusers renders the same with
   ``prompt_embeds=steer_prompt_embeds(its own prompt_embeds, ...)``, the empty prompt's
   unsteered ``negative_prompt_embeds`` and ``latents=`` jaxsteer's starting noise.
4. Written: ``roundtrip.json`` (the images' max and mean abs difference on [0, 1] pixels against
   the tolerance TOL, the steering's own effect for scale, the prompt embeddings' difference)
   and ``fixture/`` (pipeline, exported directions, diffusers' image and inputs) for
   tests/fixtures/interop/, where tests/test_interop_roundtrip.py checks jaxsteer's render
   against diffusers' image in CI, without torch.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")   # both sides on the CPU in float32

import jax  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_platforms", "cpu")
jax.config.update("jax_threefry_partitionable", True)

PROMPT, TOKEN = "a picture of a monster", "monster"
STEPS, GUIDANCE, SEED, INDEX = 4, 2.0, 0, 0
TOL = 1e-3   # max abs difference of the two renders, on [0, 1] pixels (a quarter of 1/255)
UNET = {"sample_size": 8, "in_channels": 4, "out_channels": 4, "block_out_channels": [32, 64],
        "layers_per_block": 1, "cross_attention_dim": 32, "attention_head_dim": 8,
        "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]}
VAE = {"in_channels": 3, "out_channels": 3, "latent_channels": 4, "block_out_channels": [16, 32],
       "layers_per_block": 1, "norm_num_groups": 8, "sample_size": 16,
       "down_block_types": ["DownEncoderBlock2D"] * 2, "up_block_types": ["UpDecoderBlock2D"] * 2,
       "scaling_factor": 0.18215}


def build_pipeline(folder: Path, seed: int = 0):
    """The tiny random diffusers pipeline, saved to ``folder`` and returned."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from jaxsteer.models.tiny import _SCHEDULER, _clip_config, write_char_tokenizer

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    tok_dir = folder.parent / "tokenizer_src"
    write_char_tokenizer(tok_dir)
    tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir))
    clip = _clip_config(len(tokenizer.get_vocab()), 32, 77, "CLIPTextModel")
    text = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in clip.items()
                                           if k not in ("architectures", "model_type")}))
    unet, vae = UNet2DConditionModel(**UNET), AutoencoderKL(**VAE)
    with torch.no_grad():   # norm scales and biases off their defaults: a mix-up would show
        for model in (text, unet, vae):
            for mod in model.modules():
                if isinstance(mod, (torch.nn.GroupNorm, torch.nn.LayerNorm)) and \
                        mod.weight is not None:
                    mod.weight.copy_(1 + 0.1 * torch.randn(mod.weight.shape, generator=gen))
                    mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=gen))
    scheduler = DDIMScheduler.from_config({k: v for k, v in _SCHEDULER.items()
                                           if not k.startswith("_")})
    pipe = StableDiffusionPipeline(vae=vae.eval(), text_encoder=text.eval(), tokenizer=tokenizer,
                                   unet=unet.eval(), scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    # The tokenizer's own files (vocab.json, merges.txt), which transformers 4 and 5 both read,
    # in place of whatever this transformers saves.
    shutil.rmtree(folder / "tokenizer")
    shutil.move(str(tok_dir), str(folder / "tokenizer"))
    return pipe


def directions(folder: Path, work: Path) -> Path:
    """jaxsteer's collect -> decompose -> export on the saved pipeline: the exported file."""
    from jaxsteer import cli

    grads = work / "grads"
    for argv in (["collect", "--model", str(folder), "--prompt", PROMPT, "--token", TOKEN,
                  "--pool", "none", "--pairs", "16", "--batch", "8", "--steps", "2",
                  "--dtype", "float32", "--out", str(grads)],
                 ["decompose", str(grads), "--k", "2"],
                 ["export", str(grads)]):
        if cli.main(argv) != 0:
            raise RuntimeError(f"jaxsteer {argv[0]} failed")
    return grads / "directions_pca.safetensors"


def diffusers_render(pipe, tensors: dict, meta: dict, x_t: np.ndarray, alpha: float) -> dict:
    """diffusers' render from exported directions: image [H, W, 3] in [0, 1] and its inputs."""
    import torch

    from jaxsteer.interop import steer_prompt_embeds

    emb, neg = pipe.encode_prompt(meta["prompt"], "cpu", 1, True, negative_prompt="")
    emb_np = emb[0].float().numpy()
    steered = steer_prompt_embeds(emb_np, tensors["directions"][[INDEX]], meta["token_rows"],
                                  [alpha])

    def render(prompt_embeds):
        return pipe(prompt_embeds=torch.from_numpy(prompt_embeds)[None],
                    negative_prompt_embeds=neg, latents=torch.from_numpy(x_t)[None],
                    num_inference_steps=STEPS, guidance_scale=GUIDANCE, eta=0.0,
                    output_type="np").images[0]

    with torch.no_grad():
        return {"image": render(steered).astype(np.float32),
                "unsteered": render(emb_np).astype(np.float32), "prompt_embeds": emb_np,
                "steered_prompt_embeds": steered.astype(np.float32),
                "negative_prompt_embeds": neg[0].float().numpy()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("interop"))
    ap.add_argument("--alpha", type=float, default=3.0, help="relative strength")
    args = ap.parse_args()
    import diffusers
    import torch
    import transformers

    from jaxsteer.interop import read_exported, render_exported
    from jaxsteer.models import load
    from jaxsteer.records import save_arrays
    from jaxsteer.sample import encode_prompt
    from jaxsteer.sampling import SamplerConfig

    torch.set_grad_enabled(False)
    fixture = args.out / "fixture"
    shutil.rmtree(fixture, ignore_errors=True)
    fixture.mkdir(parents=True)
    folder = fixture / "pipeline"
    pipe = build_pipeline(folder)
    exported = directions(folder, args.out / "work")
    shutil.copy(exported, fixture / "directions_pca.safetensors")
    tensors, meta = read_exported(exported)

    bundle = load(str(folder), dtype="float32")
    sampler = SamplerConfig(steps=STEPS, scheduler="ddim", guidance=GUIDANCE)
    ours, x_t = render_exported(bundle, tensors, meta, INDEX, args.alpha, SEED, sampler)
    theirs = diffusers_render(pipe, tensors, meta, x_t, args.alpha)
    ours01 = (ours + 1.0) / 2.0
    cond, uncond = encode_prompt(bundle, meta["prompt"], True)
    diff = np.abs(ours01 - theirs["image"])
    result = {
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                     "transformers": transformers.__version__, "jax": jax.__version__},
        "prompt": PROMPT, "token": TOKEN, "token_rows": meta["token_rows"], "index": INDEX,
        "alpha": args.alpha, "seed": SEED, "steps": STEPS, "guidance": GUIDANCE,
        "scheduler": "ddim", "image_shape": list(ours01.shape), "tolerance": TOL,
        "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
        "steering_effect_max_abs": float(np.abs(theirs["image"] - theirs["unsteered"]).max()),
        "prompt_embeds_max_abs_diff": float(np.abs(np.asarray(cond.emb)
                                                   - theirs["prompt_embeds"]).max()),
        "negative_embeds_max_abs_diff": float(np.abs(np.asarray(uncond.emb)
                                                     - theirs["negative_prompt_embeds"]).max()),
    }
    result["passed"] = (result["max_abs_diff"] <= TOL
                        and result["steering_effect_max_abs"] > 10 * TOL)
    save_arrays(fixture / "expected.safetensors", {"x_t": x_t.astype(np.float32),
                                                     **theirs, "jaxsteer_image": ours01})
    (fixture / "expected.json").write_text(json.dumps(result, indent=1))
    (args.out / "roundtrip.json").write_text(json.dumps(result, indent=1))
    shutil.rmtree(args.out / "work", ignore_errors=True)
    print(json.dumps(result, indent=1))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
