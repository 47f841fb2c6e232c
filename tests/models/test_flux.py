"""The flux adapter: the VP view of rectified flow (a DDIM step is the flow Euler step), the
schnell / dev sigma schedules, T5 word rows, and tiny-flux through load and the Collector (the
gradient against central finite differences in float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer import sharding
from jaxsteer.collect import Collector, KernelSpec, pair_loss
from jaxsteer.kernel import KernelInputs, PairBatch
from jaxsteer.models import bundled, detect_family, load
from jaxsteer.models.flux import flow_sigmas, mu_of, vp_schedule
from jaxsteer.models.schedulers import make_schedule, step
from jaxsteer.models.tiny_flux import DEV_SCHEDULER, SCHNELL_SCHEDULER, build_tiny_flux
from jaxsteer.sampling import SamplerConfig, guided_x0_eps

PROMPT = "a picture of a monster"


@pytest.fixture(scope="module")
def flux():
    return load("tiny-flux")


def test_schnell_sigmas_are_the_unshifted_grid_and_four_trailing_steps_hit_diffusers():
    sig = flow_sigmas(SCHNELL_SCHEDULER, 4096)
    np.testing.assert_allclose(sig, np.arange(1, 1001) / 1000)
    sched = make_schedule(vp_schedule(sig), 4, "ddim")
    assert np.asarray(sched.t_s).tolist() == [999, 749, 499, 249]
    # FluxPipeline: sigmas linspace(1, 1/4, 4), then 0.
    np.testing.assert_allclose(sig[np.asarray(sched.t_s)], [1.0, 0.75, 0.5, 0.25])
    assert float(sched.alpha_next_s[-1]) == 1.0


def test_dev_sigmas_shift_with_the_image_token_count():
    assert mu_of(DEV_SCHEDULER, 4096) == pytest.approx(1.15)
    assert mu_of(DEV_SCHEDULER, 256) == pytest.approx(0.5)
    sig = flow_sigmas(DEV_SCHEDULER, 4096)
    base = 0.5
    assert sig[499] == pytest.approx(np.e ** 1.15 / (np.e ** 1.15 + 1 / base - 1))
    assert sig[-1] == 1.0 and np.all(np.diff(sig) > 0)
    assert flow_sigmas(DEV_SCHEDULER, 1024)[499] < sig[499]  # fewer tokens, less shift


def test_a_ddim_step_in_vp_coordinates_is_the_flow_euler_step(flux):
    model, params = flux.model, flux.params
    sched = make_schedule(model.schedule, 4, "ddim")
    cond = jax.jit(model.encode_text)(params, model.tokenize(PROMPT).ids_et[None])
    cond = jax.tree.map(lambda a: jnp.repeat(a, 2, 0), cond)
    x_flow = jnp.asarray(np.random.default_rng(0).standard_normal((2, *model.latent_shape)),
                         jnp.float32)
    for i in (0, 2, 3):
        t, alpha, alpha_next = sched.t_s[i], sched.alpha_s[i], sched.alpha_next_s[i]
        s = float(model.sigmas[int(t)])
        s_next = float(model.sigmas[int(sched.t_s[i + 1])]) if i < 3 else 0.0
        c, c_next = np.hypot(1 - s, s), np.hypot(1 - s_next, s_next)
        x0, eps = guided_x0_eps(model, params, x_flow / c, t, alpha, cond, None,
                                jnp.float32(0.0))
        ours = c_next * step(x0, eps, alpha_next, None)
        v = model.velocity(params, x_flow, jnp.full((2,), s), cond)
        euler = x_flow + (s_next - s) * v
        np.testing.assert_allclose(np.asarray(ours), np.asarray(euler), atol=2e-5, rtol=1e-4)
        np.testing.assert_allclose(np.asarray(x0), np.asarray(x_flow - s * v), atol=1e-5)


def test_tiny_flux_is_a_flux_pipeline_and_tokenizes_to_t5_rows(flux):
    folder = bundled.folder("tiny-flux")
    assert detect_family(folder) == "flux"
    assert any(p.name.endswith(".index.json") for p in (folder / "transformer").iterdir())
    model = flux.model
    tokens = model.tokenize("A picture of a Monster.")
    words = [w for w, _ in tokens.words]
    assert words == ["a", "picture", "of", "a", "monster", "."]
    assert tokens.rows("monster") == tuple(range(11, 18))  # ▁m o n s t e r, no bos row
    assert tokens.ids_et.shape == (2, 77) and tokens.ids_et[0, 19] == 1  # "</s>" after "."
    cond = jax.jit(model.encode_text)(flux.params, tokens.ids_et[None])
    assert cond.emb.shape == (1, model.max_tokens, model.embed_dim)
    assert set(cond.extra) == {"pooled"}
    images = jax.jit(model.decode)(flux.params, jnp.zeros((1, *model.latent_shape)))
    assert images.shape == (1, 16, 16, 3)
    assert jax.jit(model.encode_image)(flux.params, images).shape == (1, *model.latent_shape)


def test_dev_puts_its_distilled_guidance_in_the_conditioning(tmp_path):
    bundle = load(str(build_tiny_flux(tmp_path / "dev", dev=True)))
    model = bundle.model
    cond = jax.jit(model.encode_text)(bundle.params, model.tokenize(PROMPT).ids_et[None])
    assert model.distilled_guidance == 3.5 and cond.extra["guidance"].tolist() == [3.5]
    x = jnp.ones((1, *model.latent_shape))
    t = jnp.array([600])
    a = model.predict(bundle.params, x, t, cond)
    b = model.predict(bundle.params, x, t, cond.replace(extra={**cond.extra,
                                                              "guidance": jnp.array([1.0])}))
    assert not np.allclose(a, b)


def test_collector_gradient_is_finite_and_matches_finite_differences_in_float64():
    with jax.enable_x64(True):
        bundle = load("tiny-flux", dtype="float64")
        sampler = SamplerConfig(steps=2, guidance=0.0, remat=False)
        col = Collector(bundle, sampler, sharding.make_mesh(devices=jax.devices()[:1]))
        prompt = col.prepare(PROMPT, "monster")
        rng = np.random.default_rng(1)
        a, b = rng.standard_normal((2, 2, *bundle.model.latent_shape))
        inputs = KernelInputs(cond=prompt.cond, uncond=prompt.uncond, rows_r=prompt.rows_r,
                              key=jax.random.key(0), sched=col.sched,
                              guidance=jnp.float64(0.0))
        batch = PairBatch(idx_p=jnp.arange(2), a=jnp.asarray(a), b=jnp.asarray(b))
        spec = KernelSpec(bundle.model, use_cfg=False, remat=False)
        loss = jax.jit(lambda d: pair_loss(d, spec, bundle.params, inputs, batch))
        delta = jnp.zeros((2, len(prompt.rows_r), bundle.model.embed_dim), jnp.float64)
        grad = np.asarray(jax.jit(jax.grad(lambda d: pair_loss(d, spec, bundle.params, inputs,
                                                             batch)))(delta))
        assert grad.dtype == np.float64 and np.all(np.isfinite(grad)) and np.any(grad != 0)
        h = 1e-6
        for p, r, d in [(0, 0, 0), (1, 5, 17), (0, 3, 31)]:
            e = jnp.zeros_like(delta).at[p, r, d].set(h)
            fd = (float(loss(delta + e)) - float(loss(delta - e))) / (2 * h)
            assert abs(fd - grad[p, r, d]) <= 1e-4 * max(abs(fd), 1e-8), (p, r, d, fd,
                                                                          grad[p, r, d])
