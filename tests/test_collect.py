"""The collector: finite differences, determinism, sharded == single device, the pool-free path."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer import sharding
from jaxsteer.collect import Collector, KernelSpec, PairBatch, draw_pairs, pair_loss
from jaxsteer.models import load
from jaxsteer.sampling import SamplerConfig

PROMPT = "a picture of a monster"


@pytest.fixture(scope="module")
def latents():
    return np.random.default_rng(0).standard_normal((8, 4, 8, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def collector8(tiny_bundle):
    return Collector(tiny_bundle, SamplerConfig(steps=2, guidance=2.0), sharding.make_mesh())


def test_gradient_matches_central_finite_differences_in_float64(tiny_folder):
    with jax.enable_x64(True):
        bundle = load(str(tiny_folder), dtype="float64")
        sampler = SamplerConfig(steps=2, guidance=2.0, remat=False)
        col = Collector(bundle, sampler, sharding.make_mesh(devices=jax.devices()[:1]))
        prompt = col.prepare(PROMPT, "monster")
        rng = np.random.default_rng(1)
        a, b = rng.standard_normal((2, 2, 4, 8, 8))
        inputs = col.kernel_inputs(prompt, jax.random.key(0)).replace(guidance=jnp.float64(2.0))
        batch = PairBatch(idx_p=jnp.arange(2), a=jnp.asarray(a), b=jnp.asarray(b))
        spec = KernelSpec(bundle.model, use_cfg=True, remat=False)
        loss = jax.jit(lambda d: pair_loss(d, spec, bundle.params, inputs, batch))
        delta = jnp.zeros((2, len(prompt.rows_r), 32), jnp.float64)
        grad = np.asarray(jax.jit(jax.grad(lambda d: pair_loss(d, spec, bundle.params, inputs,
                                                             batch)))(delta))
        assert grad.dtype == np.float64
        h = 1e-6
        for p, r, d in [(0, 0, 0), (0, 3, 7), (1, 6, 31), (1, 2, 12)]:
            e = jnp.zeros_like(delta).at[p, r, d].set(h)
            fd = (float(loss(delta + e)) - float(loss(delta - e))) / (2 * h)
            assert abs(fd - grad[p, r, d]) <= 1e-4 * max(abs(fd), 1e-8), (
                p, r, d, fd, grad[p, r, d])


def test_same_seed_is_bit_identical_and_other_seeds_differ(collector8, latents):
    prompt = collector8.prepare(PROMPT, "monster")
    run = lambda seed: np.asarray(collector8(prompt, np.arange(8), jax.random.key(seed),  # noqa: E731
                                             latents, latents[::-1]))
    g0, g0b, g1 = run(0), run(0), run(1)
    np.testing.assert_array_equal(g0, g0b)
    assert not np.allclose(g0, g1)
    assert g0.shape == (8, 8, 32)  # 7 rows of 'monster' padded to 8
    np.testing.assert_array_equal(g0[:, 7], g0[:, 6])  # the pad row repeats the last real row


def test_eight_devices_give_the_gradients_of_one(tiny_bundle, collector8, latents):
    one = Collector(tiny_bundle, SamplerConfig(steps=2, guidance=2.0),
                    sharding.make_mesh(devices=jax.devices()[:1]))
    prompt8, prompt1 = collector8.prepare(PROMPT, "monster"), one.prepare(PROMPT, "monster")
    idx = np.arange(5)  # not a multiple of 8: the sharded call pads and the caller slices
    g8 = np.asarray(collector8(prompt8, idx, jax.random.key(0), latents[:5], latents[3:]))[:5]
    g1 = np.asarray(one(prompt1, idx, jax.random.key(0), latents[:5], latents[3:]))
    np.testing.assert_allclose(g8, g1, rtol=1e-4, atol=1e-6)
    # A pair's gradient does not depend on which other pairs share its batch.
    g_alone = np.asarray(one(prompt1, idx[2:3], jax.random.key(0), latents[2:3], latents[5:6]))
    np.testing.assert_allclose(g_alone[0], g1[2], rtol=1e-4, atol=1e-6)


def test_prompts_share_one_compiled_program(collector8, latents):
    """Per-prompt data are arrays: a second prompt with the same row count does not recompile."""
    p1 = collector8.prepare(PROMPT, "monster")
    collector8(p1, np.arange(8), jax.random.key(0), latents, latents)
    before = collector8.kernel._cache_size()
    p2 = collector8.prepare("a drawing of a dragons", "dragons")   # also 7 tokens
    g = collector8(p2, np.arange(8), jax.random.key(0), latents, latents)
    assert collector8.kernel._cache_size() == before
    assert np.all(np.isfinite(np.asarray(g)))


def test_pool_free_variant_differentiates_both_generations(tiny_bundle):
    col = Collector(tiny_bundle, SamplerConfig(steps=2), sharding.make_mesh(), pool=False)
    prompt = col.prepare(PROMPT, "a")
    g = np.asarray(col(prompt, np.arange(8), jax.random.key(0)))
    assert g.shape == (8, 2, 32) and np.all(np.isfinite(g))
    assert np.abs(g).max() > 0
    assert not np.allclose(g[0], g[1])


def test_pairs_are_distinct_and_prefix_stable():
    p = draw_pairs(0, 1000, 7)
    assert np.all(p[:, 0] != p[:, 1]) and p.min() >= 0 and p.max() < 7
    np.testing.assert_array_equal(draw_pairs(0, 10, 7), p[:10])


def test_a_batch_too_large_for_its_remat_policy_recomputes_more(tiny_folder, latents, monkeypatch,
                                                                capsys):
    """With device memory known, the collector compiles down the remat ladder (none -> matmuls ->
    blocks) until the program fits, keeps the gradients, and says so; nothing fits: a UserError."""
    from jaxsteer import collect
    from jaxsteer.errors import UserError

    bundle = load(str(tiny_folder), remat_policy="none")
    mesh = sharding.make_mesh(devices=jax.devices()[:1])
    col = Collector(bundle, SamplerConfig(steps=1), mesh)
    prompt = col.prepare(PROMPT, "monster")
    args = (prompt, np.arange(4), jax.random.key(0), latents[:4], latents[4:])
    plain = np.asarray(col(*args))                    # CPU: no statistics, the kernel as is
    assert collect.device_memory(mesh) is None

    def needs(policy):
        c = Collector(load(str(tiny_folder), remat_policy=policy), SamplerConfig(steps=1), mesh)
        batch = sharding.put_batch(mesh, PairBatch(idx_p=np.arange(4, dtype=np.int32),
                                                   a=latents[:4], b=latents[4:]))
        inputs = c.kernel_inputs(prompt, jax.random.key(0)).replace(guidance=jnp.float32(0))
        return collect.program_bytes(c.kernel.lower(c.params, inputs, batch).compile())

    none, full = needs("none"), needs("full")
    assert full < none
    limit = int((full + none) / 2 / collect.MEMORY_HEADROOM)   # room for full, not for none
    monkeypatch.setattr(collect, "device_memory", lambda mesh: (limit, 0))
    fitted = Collector(bundle, SamplerConfig(steps=1), mesh)
    np.testing.assert_allclose(np.asarray(fitted(*args)), plain, rtol=1e-5, atol=1e-7)
    err = capsys.readouterr().err
    assert "with remat policy none" in err and "using" in err
    monkeypatch.setattr(collect, "device_memory", lambda mesh: (full // 2, 0))
    with pytest.raises(UserError, match="lower --batch"):
        Collector(bundle, SamplerConfig(steps=1), mesh)(*args)


def test_fitted_kernels_run_on_a_mesh_without_the_host_device(tiny_folder, latents, monkeypatch):
    """The placement rule (sharding.py): on a GPU the collector's AOT-compiled kernels refused
    conditioning the text encoder had left on the host's CPU device. Here a mesh of devices 2-3
    (not device 0, where diffusers' loaders commit weights) with device memory reported, so the
    fitted (compiled) program runs: pool and pool-free, equal to the plain jit on device 0."""
    from jaxsteer import collect

    bundle = load(str(tiny_folder))
    args = lambda p: (p, np.arange(4), jax.random.key(0), latents[:4], latents[4:])  # noqa: E731
    plain = {}
    for pool in (True, False):
        col = Collector(bundle, SamplerConfig(steps=1), sharding.make_mesh(
            devices=jax.devices()[:1]), pool=pool)
        p = col.prepare(PROMPT, "monster")
        plain[pool] = np.asarray(col(*args(p)) if pool else col(p, np.arange(4), jax.random.key(0)))
    monkeypatch.setattr(collect, "device_memory", lambda mesh: (1 << 40, 0))
    mesh = sharding.make_mesh(devices=jax.devices()[2:4])
    for pool in (True, False):
        col = Collector(bundle, SamplerConfig(steps=1), mesh, pool=pool)
        p = col.prepare(PROMPT, "monster")
        assert p.cond.emb.sharding.device_set == set(jax.devices()[2:4])
        g = col(*args(p)) if pool else col(p, np.arange(4), jax.random.key(0))
        assert g.sharding.device_set == set(jax.devices()[2:4])
        np.testing.assert_allclose(np.asarray(g), plain[pool], rtol=1e-5, atol=1e-7)


def test_loaded_weights_follow_the_default_device(tiny_folder):
    """Weights are placed on JAX's default device (the accelerator), not committed to the host."""
    with jax.default_device(jax.devices()[3]):
        bundle = load(str(tiny_folder))
    devices = {d for leaf in jax.tree.leaves(bundle.params) for d in leaf.devices()}
    assert devices == {jax.devices()[3]}


def test_collect_on_a_pool_takes_its_sampler_settings_unless_a_flag_says_otherwise(tmp_path,
                                                                                   capsys):
    from jaxsteer import cli, config, records
    from jaxsteer.collect import CollectRun
    from jaxsteer.sample import pool_differences

    ident = {"model": "shapes", "prompt": "a circle", "steps": 4, "scheduler": "ddim",
             "spacing": None, "timesteps": [], "guidance": 0.0, "latent_shape": [3, 32, 32]}
    records.write_json(tmp_path / "pool" / "manifest.json", {"format": 1, "identity": ident})
    args = ["--model", "shapes", "--prompt", "a circle", "--token", "circle",
            "--pool", str(tmp_path / "pool")]
    presets = cli._presets_for(CollectRun)
    cfg = config.parse(CollectRun, args, "jaxsteer collect", presets=presets)
    assert (cfg.sampler.steps, cfg.sampler.guidance) == (4, 0.0)   # the pool's, not the shapes
    assert pool_differences(cfg.sampler, {"identity": ident}) == []   # preset's 20, 3.0
    cfg = config.parse(CollectRun, args + ["--guidance", "3"], "jaxsteer collect",
                       presets=presets)
    assert (cfg.sampler.steps, cfg.sampler.guidance) == (4, 3.0)   # a flag wins
    assert pool_differences(cfg.sampler, {"identity": ident}) == ["guidance 3.0 (pool 0.0)"]
    no_pool = config.parse(CollectRun, args[:6], "jaxsteer collect", presets=presets)
    assert (no_pool.sampler.steps, no_pool.sampler.guidance) == (20, 3.0)   # the model preset


def test_the_gradient_driver_equals_one_call_per_batch(collector8, latents):
    """`Collector.gradients` (padded batches, one in flight) gives each pair the gradient a
    single call gives it, whatever the batching; the pair table picks the pool rows."""
    prompt = collector8.prepare(PROMPT, "monster")
    key = jax.random.key(3)
    pairs = draw_pairs(0, 11, len(latents))
    whole = np.asarray(collector8(prompt, np.arange(11), key, latents[pairs[:, 0]],
                                  latents[pairs[:, 1]]))[:11, :prompt.num_rows]
    for batch, pad in ((8, False), (4, True), (11, False)):
        got = collector8.gradients(prompt, np.arange(11), key, latents, pairs, batch=batch,
                                   pad=pad)
        assert got.shape == (11, prompt.num_rows, 32) and got.dtype == np.float32
        np.testing.assert_allclose(got, whole, rtol=1e-5, atol=1e-6)
    seen = [idx.tolist() for idx, _ in collector8.iter_gradients(
        prompt, [np.arange(3), np.arange(3, 5)], key, latents, pairs)]
    assert seen == [[0, 1, 2], [3, 4]]


def test_a_timestep_without_a_pool_is_refused(tiny_bundle):
    """--timestep noises a pool image; pool-free pairs start from pure noise, which a later
    first step would read as x_t at that timestep."""
    from jaxsteer.collect import CollectRun
    from jaxsteer.errors import UserError
    with pytest.raises(UserError, match="needs --pool"):
        CollectRun(timestep=500)
    assert CollectRun(timestep=500, pool="runs/pool").timestep == 500
    with pytest.raises(UserError, match="needs --pool"):   # the library's entry point too
        Collector(tiny_bundle, SamplerConfig(steps=1), sharding.make_mesh(), pool=False,
                  timestep=500)
