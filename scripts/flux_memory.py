"""Parameter memory per device of FLUX.1 [schnell] / [dev] with and without parameter sharding.

    PYTHONPATH=$PWD python3 scripts/flux_memory.py          # a table; --json for the numbers

Counted, not measured: the full pipeline's parameter shapes (jaxsteer's own Flux transformer,
T5-XXL encoder, CLIP-L and the 16-channel autoencoder, at their hub configs) from ``eval_shape``
(nothing is allocated), laid out on a simulated mesh by `sharding.param_layout` exactly as
``jaxsteer collect --param-sharding fsdp`` lays out loaded weights (every device on the model
axis), and summed per device by `sharding.param_bytes_per_device`. Activations, the compiled
program's temporaries and the gathered weights of the layer running come on top.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

DEVICES = (1, 4, 8, 16)
jax.config.update("jax_num_cpu_devices", max(DEVICES))


def pipeline_shapes(dtype, guidance: bool = False) -> dict:
    """The parameter tree of a FluxModel's ``params`` as ShapeDtypeStructs."""
    from jaxsteer.models.architectures import FLUX_TRANSFORMERS, param_shapes
    from jaxsteer.models.nn import AutoencoderKL, CLIPTextConfig, CLIPTextModel, VAEConfig
    from jaxsteer.models.nn.flux import FluxConfig, FluxTransformer2DModel
    from jaxsteer.models.nn.t5 import T5Config, T5EncoderModel

    flux = FluxConfig.from_diffusers(FLUX_TRANSFORMERS["flux"] | {"guidance_embeds": guidance})
    vae = VAEConfig(latent_channels=16, use_quant_conv=False, use_post_quant_conv=False,
                    scaling_factor=0.3611)
    modules = {"transformer": FluxTransformer2DModel(flux), "text_encoder_2": T5EncoderModel(
        T5Config()), "text_encoder": CLIPTextModel(CLIPTextConfig()), "vae": AutoencoderKL(vae)}
    return {k: param_shapes(m, dtype) for k, m in modules.items()}


def table(dtype=jnp.bfloat16) -> list[dict]:
    from jaxsteer import sharding

    rows = []
    for variant, guidance in (("schnell", False), ("dev", True)):
        shapes = pipeline_shapes(dtype, guidance)
        for n in DEVICES:
            mesh = sharding.make_mesh(data=1, model=n, devices=jax.devices()[:n])
            row = {"variant": variant, "dtype": jnp.dtype(dtype).name, "devices": n}
            for mode in sharding.PARAM_SHARDINGS:
                layout = sharding.param_layout(shapes, mesh, mode)
                report = sharding.param_bytes_per_device(
                    sharding.layout_shapes(shapes, mesh, layout))
                row[f"{mode}_gib"] = report["max"] / 2**30
                row["total_gib"] = report["total"] / 2**30
                if mode == "none":   # the transformer alone, replicated (what the kernel runs)
                    tr = sharding.param_bytes_per_device(sharding.layout_shapes(
                        shapes["transformer"], mesh, None))
                    row["transformer_gib"] = tr["total"] / 2**30
            rows.append(row)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = table()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print("variant  devices  pipeline GiB  transformer GiB  per device: none  fsdp")
    for r in rows:
        print(f"{r['variant']:<8} {r['devices']:>7} {r['total_gib']:>13.1f} "
              f"{r['transformer_gib']:>16.1f} {r['none_gib']:>17.1f} {r['fsdp_gib']:>5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
