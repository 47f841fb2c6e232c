"""Parameter sharding over the mesh's model axis: the path rules, per-device bytes, and
gradients on 8 simulated CPU devices (data 2 x model 4) equal to those of one device."""

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jaxsteer import sharding
from jaxsteer.collect import Collector
from jaxsteer.errors import UserError
from jaxsteer.models import ModelConfig, load
from jaxsteer.sampling import SamplerConfig

MODEL = sharding.MODEL


def test_rules_split_large_kernels_and_replicate_the_rest():
    spec = sharding.param_spec
    big = 1 << 20
    assert spec("transformer/transformer_blocks_0/attn/to_q/kernel", (3072, 3072), 4) == \
        P(None, MODEL)
    assert spec("unet/down_blocks_0/resnets_0/conv1/kernel", (3, 3, 320, 320), 4) == \
        P(None, None, None, MODEL)
    assert spec("text_encoder_2/shared/embedding", (32128, 4096), 4) == P(MODEL, None)
    assert spec("transformer/norm_out/linear/bias", (big,), 4) == P()      # no rule
    assert spec("transformer/x_embedder/kernel", (64, 512), 4) == P()     # too small
    assert spec("transformer/proj_out/kernel", (3072, 1022), 4) == P()     # 4 does not divide
    assert spec("transformer/proj_out/kernel", (3072, 3072), 1) == P()     # no model axis


@pytest.mark.parametrize("name,fitted", [("tiny-flux", True), ("tiny", False)])
def test_fsdp_collector_gives_the_gradients_of_one_device(name, fitted, monkeypatch):
    """`Collector(param_sharding="fsdp")` on data 2 x model 4: weights split over the model
    axis (fewer bytes per device), the 5 pairs padded to 6 and split over the data axis, and
    the gradients of an unsharded Collector on one device. ``fitted``: device memory reported,
    so the AOT memory-fitted program (`Collector._fit`) runs, compiled for the sharded params."""
    from jaxsteer import collect

    bundle = load(name)
    sampler = SamplerConfig(steps=1, guidance=0.0, remat=False)
    one = Collector(bundle, sampler, sharding.make_mesh(devices=jax.devices()[:1]))
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 5, *bundle.model.latent_shape)).astype(np.float32)
    idx = np.arange(5)
    prompt = one.prepare("a picture of a monster", "monster")
    ref = np.asarray(one(prompt, idx, jax.random.key(0), a, b))

    monkeypatch.setattr(sharding, "MIN_SHARDED_SIZE", 0)   # tiny weights: split them all
    if fitted:
        monkeypatch.setattr(collect, "device_memory", lambda mesh: (1 << 40, 0))
    mesh = sharding.make_mesh(data=2, model=4)
    fsdp = Collector(bundle, sampler, mesh, param_sharding="fsdp")
    assert fsdp.layout is not None and any(MODEL in s for s in fsdp.layout.specs)
    split = [leaf for leaf in jax.tree.leaves(fsdp.params) if MODEL in leaf.sharding.spec]
    assert split, "no parameter was split over the model axis"
    report = sharding.param_bytes_per_device(fsdp.params)
    assert len(report["per_device"]) == 8 and report["max"] < 0.5 * report["total"]
    replicated = sharding.param_bytes_per_device(Collector(bundle, sampler, mesh).params)
    assert replicated["max"] == replicated["total"] == report["total"]
    got = fsdp(fsdp.prepare("a picture of a monster", "monster"), idx, jax.random.key(0), a, b)
    assert got.sharding.spec == sharding.batch_sharding(mesh).spec
    programs = list(fsdp._fitted.values())
    assert len(programs) == 1 and (programs[0] is fsdp.kernel) != fitted
    got = np.asarray(got)[:5]
    assert np.abs(ref).max() > 0
    np.testing.assert_allclose(got, ref, atol=1e-5 * np.abs(ref).max(), rtol=1e-4)
    print(f"{name}: {len(split)} leaves split; bytes per device {report['max']} of "
          f"{report['total']}")


def test_collect_run_with_fsdp_puts_every_device_on_the_model_axis(tmp_path, monkeypatch):
    """`jaxsteer collect --param-sharding fsdp` builds its Collector on a 1 x 8 mesh with fsdp
    (stopped there: the kernel is the test above's); a bad mode is a clear error."""
    from jaxsteer import collect

    seen = []

    def spy(bundle, sampler, mesh, **kw):
        seen.append((dict(mesh.shape), kw["param_sharding"]))
        raise KeyboardInterrupt   # nothing more to check, and nothing is written

    monkeypatch.setattr(collect, "Collector", spy)
    with pytest.raises(UserError, match="--param-sharding"):
        collect.CollectRun(prompt="a picture of a monster", token="monster",
                           param_sharding="zero3")
    cfg = collect.CollectRun(model=ModelConfig(name="tiny"), sampler=SamplerConfig(steps=1),
                             prompt="a picture of a monster", token="monster", pairs=8,
                             batch=8, param_sharding="fsdp", out=tmp_path / "g")
    with pytest.raises(KeyboardInterrupt):
        collect.run(cfg)
    assert seen == [({"data": 1, "model": 8}, "fsdp")]
    assert not (tmp_path / "g").exists()


def test_bytes_per_device_of_a_layout_equal_those_of_the_placed_weights():
    """`layout_shapes` + `param_bytes_per_device` count a model too large to allocate (the
    README's Flux table) exactly as placed arrays count."""
    from jaxsteer.models.architectures import FLUX_TRANSFORMERS, param_shapes
    from jaxsteer.models.nn.flux import FluxConfig, FluxTransformer2DModel

    module = FluxTransformer2DModel(FluxConfig.from_diffusers(FLUX_TRANSFORMERS["tiny-flux"]))
    mesh = sharding.make_mesh(data=1, model=8)
    shapes = {"transformer": param_shapes(module, np.float32)}
    layout = sharding.param_layout(shapes, mesh, "fsdp", min_size=0)
    counted = sharding.param_bytes_per_device(sharding.layout_shapes(shapes, mesh, layout))
    zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
    placed = sharding.param_bytes_per_device(sharding.place_params(mesh, zeros, layout))
    assert counted == placed and counted["max"] < counted["total"]
    whole = sharding.param_bytes_per_device(sharding.layout_shapes(shapes, mesh, None))
    assert whole["max"] == whole["total"] == counted["total"]
