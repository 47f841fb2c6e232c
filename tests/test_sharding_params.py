"""Parameter sharding over the mesh's model axis: the path rules, per-device bytes, and
gradients on 8 simulated CPU devices (data 2 x model 4) equal to those of one device."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jaxsteer import sharding
from jaxsteer.collect import Collector, KernelSpec, pair_loss
from jaxsteer.kernel import KernelInputs, PairBatch
from jaxsteer.models import load
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


@pytest.mark.parametrize("name", ["tiny-flux", "tiny-xl"])
def test_sharded_gradients_equal_unsharded_ones(name):
    bundle = load(name)
    sampler = SamplerConfig(steps=1, guidance=0.0, remat=False)
    one = Collector(bundle, sampler, sharding.make_mesh(devices=jax.devices()[:1]))
    prompt = one.prepare("a picture of a monster", "monster")
    rng = np.random.default_rng(0)
    a, b = (jnp.asarray(x, jnp.float32) for x in rng.standard_normal(
        (2, 4, *bundle.model.latent_shape)))
    inputs = KernelInputs(cond=prompt.cond, uncond=prompt.uncond, rows_r=prompt.rows_r,
                          key=jax.random.key(0), sched=one.sched, guidance=jnp.float32(0.0))
    batch = PairBatch(idx_p=jnp.arange(4), a=a, b=b)
    spec = KernelSpec(bundle.model, use_cfg=False, remat=False)
    delta = jnp.zeros((4, len(prompt.rows_r), bundle.model.embed_dim), jnp.float32)
    grad = jax.jit(jax.grad(lambda d, p, i, bt: pair_loss(d, spec, p, i, bt)))
    ref = np.asarray(grad(delta, bundle.params, inputs, batch))

    mesh = sharding.make_mesh(data=2, model=4)
    params = sharding.put_params(mesh, bundle.params, min_size=0)
    sharded = [leaf for leaf in jax.tree.leaves(params)
               if leaf.sharding.spec != P() and MODEL in leaf.sharding.spec]
    assert sharded, "no parameter was split over the model axis"
    report = sharding.param_bytes_per_device(params)
    assert len(report["per_device"]) == 8 and report["max"] < report["total"]
    replicated = sharding.param_bytes_per_device(sharding.put_replicated(mesh, bundle.params))
    assert replicated["max"] == replicated["total"]
    got = np.asarray(grad(sharding.put_batch(mesh, delta), params,
                          sharding.put_replicated(mesh, inputs), sharding.put_batch(mesh, batch)))
    assert np.abs(ref).max() > 0
    np.testing.assert_allclose(got, ref, atol=1e-5 * np.abs(ref).max(), rtol=1e-4)
    print(f"{name}: {len(sharded)} leaves split; bytes per device {report['max']} of "
          f"{report['total']}")
