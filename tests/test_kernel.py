"""The kernel's loss written out plainly, on a toy denoiser that compiles in a moment (the
UNet's own numerics are tested in tests/models): pool pairs compare the one call's clean
estimate with B; pool-free pairs, A and B generated in one chain of batch 2p, are the same
function as two chains of batch p."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer.kernel import KernelInputs, KernelSpec, PairBatch, pair_grads
from jaxsteer.models.architectures import SCHEDULES
from jaxsteer.models.base import NoiseSchedule, TextCond, schedule_from_config
from jaxsteer.models.schedulers import add_noise
from jaxsteer.sampling import SamplerConfig, broadcast_cond, generate, guided_x0_eps


@dataclasses.dataclass(frozen=True)
class Toy:
    """A denoiser whose output depends nonlinearly on the latent and on every token row."""

    schedule: NoiseSchedule = schedule_from_config(SCHEDULES["trailing"])
    latent_shape: tuple[int, int, int] = (2, 4, 4)
    embed_dim: int = 8

    def predict(self, params, x_bchw, t_b, cond: TextCond):
        e_bc = jnp.tanh(cond.emb @ params["w"]).mean(1)           # [b, 2]
        return jnp.tanh(x_bchw * (1.0 + e_bc[:, :, None, None])) + 1e-3 * t_b[:, None, None, None]


def _pair_conds_and_keys(delta_prd, inputs: KernelInputs, idx_p):
    """Each pair's conditioning (the prompt's rows offset by its delta) and its key."""
    p = delta_prd.shape[0]
    offset = jnp.zeros((p, *inputs.cond.emb.shape)).at[:, inputs.rows_r, :].add(delta_prd)
    cond = broadcast_cond(inputs.cond, p)
    return (cond.replace(emb=cond.emb + offset),
            jax.vmap(jax.random.fold_in, (None, 0))(inputs.key, idx_p))


def _two_chains_loss(delta_prd, model, params, inputs: KernelInputs, idx_p):
    p = delta_prd.shape[0]
    cond, keys_p = _pair_conds_and_keys(delta_prd, inputs, idx_p)
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


def _clean_estimate_loss(delta_prd, model, params, inputs: KernelInputs, batch: PairBatch):
    p = delta_prd.shape[0]
    cond, keys_p = _pair_conds_and_keys(delta_prd, inputs, batch.idx_p)
    noise = jax.vmap(lambda k, x: jax.random.normal(jax.random.fold_in(k, 0), x.shape))(
        keys_p, batch.a)
    sched = inputs.sched
    x_t = add_noise(batch.a, noise, sched.alpha_s[0])
    x0, _ = guided_x0_eps(model, params, x_t, sched.t_s[0], sched.alpha_s[0], cond, None,
                          inputs.guidance)
    return jnp.sum(jnp.mean(jnp.square(x0 - batch.b).reshape(p, -1), axis=1))


def test_pool_pairs_compare_the_clean_estimate_of_a_cut_schedule_with_b():
    """A 4-step schedule cut to its first step (what `Collector` runs): the loss is the MSE of
    the call's clean estimate to B, not of the DDIM state at the next timestep (mostly x_t)."""
    model = Toy()
    rng = np.random.default_rng(1)
    params = {"w": jnp.asarray(rng.standard_normal((8, 2)), jnp.float32)}
    sched = jax.tree.map(lambda a: a[:1], SamplerConfig(steps=4).schedule(model))
    assert float(sched.alpha_next_s[0]) < 0.9    # the state after the step is not the estimate
    inputs = KernelInputs(cond=TextCond(emb=jnp.asarray(rng.standard_normal((6, 8)), jnp.float32)),
                          uncond=None, rows_r=np.array([0, 3], np.int32), key=jax.random.key(2),
                          sched=sched, guidance=jnp.float32(0.0))
    lat = lambda: jnp.asarray(rng.standard_normal((3, *model.latent_shape)), jnp.float32)  # noqa: E731
    batch = PairBatch(idx_p=np.array([0, 1, 2], np.int32), a=lat(), b=lat())
    got = jax.jit(pair_grads, static_argnums=0)(KernelSpec(model, pool=True), params, inputs,
                                                batch)
    want = jax.jit(jax.grad(_clean_estimate_loss), static_argnums=1)(
        jnp.zeros((3, 2, 8)), model, params, inputs, batch)
    assert np.abs(np.asarray(want)).max() > 0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
