"""The exported-program cache: a warm wrapper runs the stored program without tracing, gives
the same numbers, and every failure falls back to plain jit."""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer import exported, sharding
from jaxsteer import kernel as pair_kernel
from jaxsteer.kernel import KernelInputs, KernelSpec, PairBatch, kernel_key
from jaxsteer.models import architectures
from jaxsteer.models.base import TextCond
from jaxsteer.sampling import SamplerConfig

TRACES = {"n": 0}


def _fn(params, inputs, batch):
    """Keys, a flax dataclass node, a None subtree, a weak scalar, and a split batch."""
    TRACES["n"] += 1
    keys = jax.vmap(jax.random.fold_in, (None, 0))(inputs["key"], batch["i"])
    noise = jax.vmap(lambda k: jax.random.normal(k, (batch["x"].shape[1],)))(keys)
    return (params["w"] * batch["x"] + noise + inputs["cond"].emb).sum(-1) * inputs["g"]


def _args(n: int = 8, d: int = 3):
    params = {"w": jnp.linspace(0.5, 1.5, d)}
    inputs = {"key": jax.random.key(0), "cond": TextCond(emb=jnp.arange(d, dtype=jnp.float32)),
              "uncond": None, "g": 2.0}
    rng = np.random.default_rng(0)
    batch = {"i": np.arange(n, dtype=np.int32), "x": rng.standard_normal((n, d), np.float32)}
    return params, inputs, batch


def _wrap(cache_dir, key="test-fn", mesh=None):
    mesh = mesh or sharding.make_mesh()
    repl, split = sharding.replicated(mesh), sharding.batch_sharding(mesh)
    return exported.cached_jit(_fn, in_shardings=(repl, repl, split), out_shardings=split,
                               key=key, cache_dir=cache_dir)


def _plain(mesh=None):
    mesh = mesh or sharding.make_mesh()
    repl, split = sharding.replicated(mesh), sharding.batch_sharding(mesh)
    return jax.jit(_fn, in_shardings=(repl, repl, split), out_shardings=split)


def _files(tmp_path):
    return sorted((tmp_path / exported.SUBDIR).glob("*.bin"))


def test_first_call_writes_and_a_fresh_wrapper_runs_it_without_tracing(tmp_path):
    args = _args()
    out = _wrap(tmp_path)(*args)
    assert len(_files(tmp_path)) == 1
    np.testing.assert_allclose(np.asarray(out), np.asarray(_plain()(*args)), rtol=1e-6)
    jax.clear_caches()   # a new process, as far as JAX's in-memory caches go
    TRACES["n"] = 0
    fresh = _wrap(tmp_path)
    again = fresh(*args)
    assert TRACES["n"] == 0
    np.testing.assert_array_equal(np.asarray(again), np.asarray(out))
    assert again.sharding == sharding.batch_sharding(sharding.make_mesh())
    # .lower().compile() as the bench uses it: same numbers, cost and memory analyses.
    compiled = fresh.lower(*args).compile()
    np.testing.assert_array_equal(np.asarray(compiled(*args)), np.asarray(out))
    assert compiled.cost_analysis() is not None and compiled.memory_analysis() is not None
    assert TRACES["n"] == 0 and len(_files(tmp_path)) == 1


def test_a_corrupt_file_falls_back_and_is_rewritten(tmp_path):
    args = _args()
    expected = np.asarray(_plain()(*args))
    _wrap(tmp_path)(*args)
    [path] = _files(tmp_path)
    good = path.read_bytes()
    for bad in (good[: len(good) // 2], good[:-10] + b"0123456789", b"garbage"):
        path.write_bytes(bad)
        jax.clear_caches()
        with pytest.warns(UserWarning, match="corrupt"):
            out = _wrap(tmp_path)(*args)
        np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-6)
        assert exported.unpack(path.read_bytes()) is not None   # rewritten whole...
        jax.clear_caches()
        TRACES["n"] = 0
        np.testing.assert_allclose(np.asarray(_wrap(tmp_path)(*args)), expected, rtol=1e-6)
        assert TRACES["n"] == 0   # ...and a fresh wrapper runs the rewritten file untraced
    assert _files(tmp_path) == [path]


def test_a_file_that_does_not_deserialize_falls_back(tmp_path):
    args = _args()
    _wrap(tmp_path)(*args)
    [path] = _files(tmp_path)
    path.write_bytes(exported.pack(b"not a flatbuffer"))   # right checksum, wrong content
    with pytest.warns(UserWarning, match="ignoring"):
        out = _wrap(tmp_path)(*args)
    np.testing.assert_allclose(np.asarray(out), np.asarray(_plain()(*args)), rtol=1e-6)
    assert exported.unpack(path.read_bytes()) != b"not a flatbuffer"


def test_shapes_keys_and_meshes_get_their_own_files(tmp_path):
    wrapped = _wrap(tmp_path)
    wrapped(*_args(8, 3))
    wrapped(*_args(16, 3))
    wrapped(*_args(8, 5))
    assert len(_files(tmp_path)) == 3
    _wrap(tmp_path, key="another-fn")(*_args(8, 3))
    one = sharding.make_mesh(devices=jax.devices()[:1])
    out = _wrap(tmp_path, mesh=one)(*_args(8, 3))
    assert len(_files(tmp_path)) == 5
    with jax.default_matmul_precision("highest"):   # config that changes traces: a new file
        wrapped(*_args(8, 3))
    assert len(_files(tmp_path)) == 6
    np.testing.assert_allclose(np.asarray(out), np.asarray(_plain(one)(*_args(8, 3))), rtol=1e-6)


def test_no_key_or_disabled_cache_is_plain_jit(tmp_path, monkeypatch):
    mesh = sharding.make_mesh()
    repl, split = sharding.replicated(mesh), sharding.batch_sharding(mesh)
    plain = exported.cached_jit(_fn, in_shardings=(repl, repl, split), out_shardings=split,
                                key=None, cache_dir=tmp_path)
    assert not isinstance(plain, exported.ExportedJit)
    plain(*_args())
    monkeypatch.setenv(exported.ENV, "0")
    _wrap(tmp_path)(*_args())
    assert not (tmp_path / exported.SUBDIR).exists()


def test_an_unexportable_function_warns_and_runs_plain(tmp_path):
    mesh = sharding.make_mesh(devices=jax.devices()[:1])
    repl = sharding.replicated(mesh)

    @jax.custom_vjp   # a callback cannot be exported: the cache must step aside
    def f(x):
        return jax.pure_callback(lambda a: np.asarray(a) * 2, jax.ShapeDtypeStruct((), x.dtype), x)

    f.defvjp(lambda x: (f(x), None), lambda _, g: (g * 2,))
    wrapped = exported.cached_jit(f, in_shardings=(repl,), out_shardings=repl, key="callback",
                                  cache_dir=tmp_path)
    with pytest.warns(UserWarning, match="not used"):
        assert float(wrapped(jnp.float32(3.0))) == 6.0
    assert not _files(tmp_path)


def test_kernel_key_is_stable_and_covers_the_spec():
    m1 = architectures.build("tiny", dtype="float32", attention="xla", params={}).model
    m2 = architectures.build("tiny", dtype="float32", attention="xla", params={}).model
    m3 = architectures.build("tiny", dtype="float32", attention="diffusers", params={}).model
    assert kernel_key(KernelSpec(m1)) == kernel_key(KernelSpec(m2))
    assert kernel_key(KernelSpec(m1)) != kernel_key(KernelSpec(m3))
    assert kernel_key(KernelSpec(m1)) != kernel_key(KernelSpec(m1, remat=False))
    assert kernel_key(KernelSpec(m1, feature=lambda x: x)) is None
    assert " at 0x" not in kernel_key(KernelSpec(m1))


def test_tiny_kernel_warm_start_does_not_trace_the_model(tmp_path, monkeypatch):
    bundle = architectures.build("tiny", dtype="float32", attention="xla")
    model = bundle.model
    mesh = sharding.make_mesh()
    spec = KernelSpec(model, pool=True, remat=False)
    sched = jax.tree.map(lambda a: a[:1], SamplerConfig(steps=1).schedule(model))
    inputs = KernelInputs(cond=architectures.random_cond("tiny"), uncond=None,
                          rows_r=np.array([1, 2], np.int32), key=jax.random.key(0), sched=sched,
                          guidance=jnp.float32(1.0))
    rng = np.random.default_rng(0)
    host = PairBatch(idx_p=np.arange(8, dtype=np.int32),
                     a=rng.standard_normal((8, *model.latent_shape), dtype=np.float32),
                     b=rng.standard_normal((8, *model.latent_shape), dtype=np.float32))
    params, batch = sharding.put_replicated(mesh, bundle.params), sharding.put_batch(mesh, host)

    def kernel():
        k = pair_kernel._cached_kernel.__wrapped__(spec, mesh, None)   # not the lru cache
        assert isinstance(k, exported.ExportedJit)
        k.cache_dir = tmp_path
        return k

    calls = {"n": 0}
    original = pair_kernel.pair_loss

    def counted(*a, **k):
        calls["n"] += 1
        return original(*a, **k)

    monkeypatch.setattr(pair_kernel, "pair_loss", counted)
    first = np.asarray(kernel()(params, inputs, batch))
    assert calls["n"] == 1 and len(_files(tmp_path)) == 1
    plain = jax.jit(functools.partial(pair_kernel.pair_grads, spec),
                    in_shardings=(sharding.replicated(mesh),) * 2
                    + (sharding.batch_sharding(mesh),))
    np.testing.assert_allclose(first, np.asarray(plain(params, inputs, batch)), rtol=1e-5,
                               atol=1e-7)
    jax.clear_caches()
    calls["n"] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # a warm start uses the file: no fallback warning
        again = np.asarray(kernel()(params, inputs, batch))
    assert calls["n"] == 0
    np.testing.assert_array_equal(again, first)
    assert first.shape == (8, 2, model.embed_dim) and np.abs(first).max() > 0
