"""The kernel's pool-free pairs: A and B generated in one chain of batch 2p are the same
function as two chains of batch p (the plain form, written out here), on a toy denoiser that
compiles in a moment (the UNet's own numerics are tested in tests/models)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer.kernel import KernelInputs, KernelSpec, PairBatch, pair_grads
from jaxsteer.models.architectures import SCHEDULES
from jaxsteer.models.base import NoiseSchedule, TextCond, schedule_from_config
from jaxsteer.sampling import SamplerConfig, broadcast_cond, generate


@dataclasses.dataclass(frozen=True)
class Toy:
    """A denoiser whose output depends nonlinearly on the latent and on every token row."""

    schedule: NoiseSchedule = schedule_from_config(SCHEDULES["trailing"])
    latent_shape: tuple[int, int, int] = (2, 4, 4)
    embed_dim: int = 8

    def predict(self, params, x_bchw, t_b, cond: TextCond):
        e_bc = jnp.tanh(cond.emb @ params["w"]).mean(1)           # [b, 2]
        return jnp.tanh(x_bchw * (1.0 + e_bc[:, :, None, None])) + 1e-3 * t_b[:, None, None, None]


def _two_chains_loss(delta_prd, model, params, inputs: KernelInputs, idx_p):
    p = delta_prd.shape[0]
    offset = jnp.zeros((p, *inputs.cond.emb.shape)).at[:, inputs.rows_r, :].add(delta_prd)
    cond = broadcast_cond(inputs.cond, p)
    cond = cond.replace(emb=cond.emb + offset)
    keys_p = jax.vmap(jax.random.fold_in, (None, 0))(inputs.key, idx_p)
    xa, xb = (generate(model, params, cond, None,
                       jax.vmap(jax.random.fold_in, (0, None))(keys_p, j), inputs.sched,
                       inputs.guidance, True) for j in (0, 1))
    return jnp.sum(jnp.mean(jnp.square(xa - xb).reshape(p, -1), axis=1))


def test_pool_free_pairs_equal_two_separate_chains():
    model = Toy()
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.standard_normal((8, 2)), jnp.float32)}
    emb = jnp.asarray(rng.standard_normal((6, 8)), jnp.float32)
    inputs = KernelInputs(cond=TextCond(emb=emb), uncond=None, rows_r=np.array([1, 2], np.int32),
                          key=jax.random.key(3), sched=SamplerConfig(steps=3).schedule(model),
                          guidance=jnp.float32(0.0))
    idx = np.array([0, 5, 9], np.int32)
    got = jax.jit(pair_grads, static_argnums=0)(KernelSpec(model, pool=False), params, inputs,
                                                PairBatch(idx_p=idx))
    want = jax.jit(jax.grad(_two_chains_loss), static_argnums=1)(
        jnp.zeros((3, 2, 8)), model, params, inputs, idx)
    assert np.abs(np.asarray(want)).min() > 0
    assert not np.allclose(want[0], want[1])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
