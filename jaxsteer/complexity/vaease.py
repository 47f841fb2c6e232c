"""VAEase per-sample active dimensions (Lu, Zhu, He & Wipf, "Sparse Autoencoders, Again?", 2025).

Axis letters: n samples, d data dimension, h encoder hidden width, l latents, b batch.

The model is a VAE whose encoder gives a mean ``mu`` and a posterior scale ``sigma`` bounded in
(0, 1) by a sigmoid, and whose sample is gated before the decoder: ``z_tilde = (1 - sigma) * z``
with ``z = mu + sigma * eps``. A latent that a sample does not need is pushed to ``sigma -> 1``
by the KL term, and the gate then closes it completely, so the decoder sees no noise from it;
a latent it needs is pushed to ``sigma -> 0``. Which latents close can differ per sample, so the
count of open ones estimates the dimension of the piece of a union of manifolds a sample lies
on. The decoder is linear (the data here are gradient clouds, studied for linear directions)
and the likelihood is Gaussian with a learned global variance ``gamma``, as in Dai & Wipf's
analysis: as gamma shrinks the model must reconstruct exactly and the split sharpens.

Params are a plain dict pytree with pure functions and an Optax loop (one module system
elsewhere is linen; this net is three matrices and needs none).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxsteer.config import opt
from jaxsteer.errors import UserError

Params = dict[str, Any]
_PARAM_NAMES = ("w1", "b1", "w2", "b2", "wd", "bd", "log_gamma")


@dataclasses.dataclass(frozen=True)
class VAEaseConfig:
    """VAEase model and training settings."""

    enabled: bool = opt(True, "train VAEase and report per-sample active dimensions")
    latents: int = opt(128, "number of latent dimensions (upper bound on any active count; keep "
                            "it well above the expected count: spare latents ease training)")
    hidden: int = opt(64, "width of the encoder's hidden layer (units); wider encoders (256) "
                          "left spare latents open on the test clouds")
    pca_dims: int = opt(128, "train on the data projected onto this many leading principal "
                             "components (0 = the raw data); the decoder is linear, so nothing "
                             "outside them could be reconstructed cheaply anyway")
    steps: int = opt(6000, "Adam steps (one minibatch each); 2,000 undercounted a 30-dim "
                           "piece by 6, 6,000 got it within 1")
    batch: int = opt(128, "samples per minibatch")
    lr: float = opt(1e-2, "peak Adam learning rate of the encoder and decoder")
    gamma_lr: float = opt(1e-2, "peak Adam learning rate of log gamma (Adam moves it ~lr per "
                                "step; it must travel ~10 units to its floor)")
    lr_final: float = opt(0.05, "both learning rates decay along a cosine to this fraction of "
                                "their peak by the last step")
    gamma_min: float = opt(1e-4, "floor on the decoder noise variance, per coordinate of the "
                                 "standardised data (whose mean per-coordinate variance is 1)")
    min_gap: float = opt(0.5, "smallest difference of the two groups' mean sigma^2 for a split; "
                              "below it all latents of a sample are one group")
    max_points: int = opt(20000, "train and count on at most this many samples (random subset)")

    def __post_init__(self) -> None:
        if self.pca_dims < 0:
            raise UserError(f"vaease.pca-dims must be >= 0, got {self.pca_dims}")
        for name in ("latents", "hidden", "steps", "batch", "max_points"):
            if getattr(self, name) < 1:
                raise UserError(f"vaease.{name} must be >= 1, got {getattr(self, name)}")
        if self.latents < 2:
            raise UserError(f"vaease.latents must be >= 2, got {self.latents}")
        if not 0.0 <= self.lr_final <= 1.0:
            raise UserError(f"vaease.lr-final must be in [0, 1], got {self.lr_final}")
        if self.lr <= 0 or self.gamma_lr <= 0 or self.gamma_min <= 0:
            raise UserError("vaease.lr, vaease.gamma-lr and vaease.gamma-min must be > 0")
        if not 0.0 < self.min_gap < 1.0:
            raise UserError(f"vaease.min-gap must be in (0, 1), got {self.min_gap}")


def standardise(x_nd: jax.Array) -> jax.Array:
    """Centres and scales ``[n, d]`` data to mean per-coordinate variance 1 (one global scale)."""
    xc_nd = x_nd - jnp.mean(x_nd, axis=0, keepdims=True)
    scale = jnp.sqrt(jnp.mean(jnp.square(xc_nd)))
    return xc_nd / jnp.maximum(scale, jnp.finfo(jnp.float32).tiny)


def init_params(key: jax.Array, dim: int, cfg: VAEaseConfig) -> Params:
    """Encoder MLP ``d -> h -> 2l`` and linear decoder ``l -> d``, with log gamma = 0."""
    k1, k2, k3 = jax.random.split(key, 3)
    h, lat = cfg.hidden, cfg.latents
    return {
        "w1": jax.random.normal(k1, (dim, h)) / jnp.sqrt(dim),
        "b1": jnp.zeros((h,)),
        "w2": jax.random.normal(k2, (h, 2 * lat)) / jnp.sqrt(h),
        # Latents start nearly closed (sigma = sigmoid(2) = 0.88): reconstruction then opens only
        # the ones a sample needs. Started open, redundant latents freeze in place once gamma is
        # small, because closing one injects noise that costs 1 / gamma.
        "b2": jnp.concatenate([jnp.zeros((lat,)), jnp.full((lat,), 2.0)]),
        "wd": jax.random.normal(k3, (lat, dim)) / jnp.sqrt(lat),
        "bd": jnp.zeros((dim,)),
        "log_gamma": jnp.zeros(()),
    }


def encode(params: Params, x_bd: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Posterior mean, scale and log-scale, each ``[b, l]``; scale = sigmoid(.) in (0, 1)."""
    h_bh = jax.nn.gelu(x_bd @ params["w1"] + params["b1"][None, :])
    mu_bl, s_bl = jnp.split(h_bh @ params["w2"] + params["b2"][None, :], 2, axis=-1)
    return mu_bl, jax.nn.sigmoid(s_bl), jax.nn.log_sigmoid(s_bl)


def loss_fn(params: Params, x_bd: jax.Array, key: jax.Array, gamma_min: float) -> jax.Array:
    """Negative ELBO per sample (constants dropped), averaged over the batch ``x_bd``."""
    mu_bl, sig_bl, log_sig_bl = encode(params, x_bd)
    z_bl = mu_bl + sig_bl * jax.random.normal(key, mu_bl.shape)
    xhat_bd = ((1.0 - sig_bl) * z_bl) @ params["wd"] + params["bd"][None, :]
    gamma = jnp.exp(params["log_gamma"]) + gamma_min
    dim = x_bd.shape[-1]
    nll_b = jnp.sum(jnp.square(x_bd - xhat_bd), -1) / (2.0 * gamma) + 0.5 * dim * jnp.log(gamma)
    kl_b = 0.5 * jnp.sum(jnp.square(mu_bl) + jnp.square(sig_bl) - 2.0 * log_sig_bl - 1.0, -1)
    return jnp.mean(nll_b + kl_b)


def make_optimizer(cfg: VAEaseConfig) -> optax.GradientTransformation:
    """Adam with cosine-decayed rates; the scalar log gamma has its own rate.

    A high peak rate lets redundant latents (two carrying one direction) separate and close
    early, while gamma is still large and closing one costs little; the decay then settles the
    fit. With a constant 1e-3 rate, 2,000 steps left 1-2 spare latents open on some seeds
    (measured on the test's union of 2- and 5-dim subspaces).
    """

    def rate(peak: float) -> optax.Schedule:
        return optax.cosine_decay_schedule(peak, cfg.steps, cfg.lr_final)

    labels = {name: "gamma" if name == "log_gamma" else "net" for name in _PARAM_NAMES}
    return optax.multi_transform({"net": optax.adam(rate(cfg.lr)),
                                  "gamma": optax.adam(rate(cfg.gamma_lr))}, labels)


def make_step(cfg: VAEaseConfig, tx: optax.GradientTransformation):
    """A pure ``step(params, opt_state, x_nd, key) -> (params, opt_state, loss)``.

    The full data ``x_nd`` is an argument and the minibatch is drawn inside, so the whole run
    compiles once and transfers nothing per step.
    """

    def step(params: Params, opt_state: Any, x_nd: jax.Array, key: jax.Array):
        k_batch, k_eps = jax.random.split(key)
        idx_b = jax.random.randint(k_batch, (cfg.batch,), 0, x_nd.shape[0])
        loss, grads = jax.value_and_grad(loss_fn)(params, x_nd[idx_b], k_eps, cfg.gamma_min)
        # Optax's Adam mixes its int32 step count with float rates; allow that inside it only,
        # so callers (and tests) may run everything else under strict dtype promotion.
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
        return params, opt_state, loss

    return step


@functools.lru_cache(maxsize=8)
def compiled_trainer(cfg: VAEaseConfig) -> tuple[optax.GradientTransformation, Any]:
    """(optimizer, jitted chunk runner) for ``cfg``, cached so a survey compiles them once."""
    tx = make_optimizer(cfg)
    return tx, make_train_chunk(cfg, tx)


def make_train_chunk(cfg: VAEaseConfig, tx: optax.GradientTransformation):
    """A jitted run of ``len(step_ids)`` steps as one ``lax.scan``.

    For a net this small the per-step dispatch dominates: 3,000 steps took 17 s as a Python
    loop over a jitted step and 4.6 s as scans (2-core CPU). The chunk length stays fixed, so it
    compiles once.
    """
    step = make_step(cfg, tx)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def run(params: Params, opt_state: Any, x_nd: jax.Array, key: jax.Array,
            step_ids: jax.Array):
        def body(carry, i):
            p, o = carry
            p, o, loss = step(p, o, x_nd, jax.random.fold_in(key, i))
            return (p, o), loss

        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), step_ids)
        return params, opt_state, losses

    return run


def train(x_nd: jax.Array, key: jax.Array, cfg: VAEaseConfig,
          chunk: int = 250) -> tuple[Params, jax.Array]:
    """Trains VAEase on standardised ``x_nd`` ``[n, d]``; deterministic given ``key``.

    Args:
      x_nd: ``[n, d]`` standardised samples.
      key: PRNG key (init and all steps derive from it).
      cfg: model and training settings; ``cfg.steps`` is rounded up to a multiple of ``chunk``.
      chunk: steps per compiled scan.

    Returns:
      (params, ``[steps]`` loss curve).
    """
    k_init, k_steps = jax.random.split(key)
    params = init_params(k_init, x_nd.shape[1], cfg)
    tx, run = compiled_trainer(cfg)
    opt_state = tx.init(params)
    chunk = min(chunk, cfg.steps)
    losses = []
    for start in range(0, cfg.steps, chunk):
        ids = jnp.arange(start, start + chunk, dtype=jnp.int32)
        params, opt_state, loss_c = run(params, opt_state, x_nd, k_steps, ids)
        losses.append(loss_c)
    return params, jnp.concatenate(losses)


def two_group_split(v_l: jax.Array, min_gap: float) -> jax.Array:
    """Size of the low group of a 1-D two-cluster split of ``v_l`` ``[l]`` (values in [0, 1]).

    The split point on the sorted values minimises the summed within-group squared deviation
    (1-D 2-means is exact this way). If the two groups' means differ by less than ``min_gap``
    there is no real second cluster: all values are one group, counted as low when their mean is
    below 0.5 (sigma^2 lies in (0, 1), so 0.5 is the midpoint between open and closed).

    Returns:
      int32 scalar in [0, l].
    """
    n_lat = v_l.shape[0]
    s_l = jnp.sort(v_l)
    m_j = jnp.arange(1, n_lat, dtype=jnp.float32)  # size of the low group for each split j
    cs_l, cs2_l = jnp.cumsum(s_l), jnp.cumsum(jnp.square(s_l))
    lo_sum, lo_sq = cs_l[:-1], cs2_l[:-1]
    hi_sum, hi_sq = cs_l[-1] - lo_sum, cs2_l[-1] - lo_sq
    sse_j = (lo_sq - jnp.square(lo_sum) / m_j) + (hi_sq - jnp.square(hi_sum) / (n_lat - m_j))
    j = jnp.argmin(sse_j)
    gap = hi_sum[j] / (n_lat - m_j[j]) - lo_sum[j] / m_j[j]
    one_group = jnp.where(jnp.mean(s_l) < 0.5, n_lat, 0)
    return jnp.where(gap >= min_gap, j + 1, one_group).astype(jnp.int32)


@jax.jit
def posterior_variances(params: Params, x_nd: jax.Array) -> jax.Array:
    """``sigma^2`` of every latent for every sample, ``[n, l]``."""
    return jnp.square(encode(params, x_nd)[1])


def active_dims(params: Params, x_nd: jax.Array, min_gap: float = 0.5) -> jax.Array:
    """Per-sample number of active latents (the low-sigma^2 group), ``[n]`` int32."""
    var_nl = posterior_variances(params, x_nd)
    return jax.vmap(lambda v: two_group_split(v, min_gap))(var_nl)


def pca_project(x_nd: jax.Array, dims: int, key: jax.Array, power_iters: int = 4,
                oversample: int = 16) -> jax.Array:
    """Coordinates ``[n, p]`` of centred ``x_nd`` ``[n, d]`` on its ``dims`` leading axes.

    Randomized SVD (Halko, Martinsson & Tropp 2011) with power iterations: the axes only choose
    the space VAEase trains in, so their near-exactness is enough, and it costs a few
    ``[n, d] x [d, p]`` products instead of a full SVD (seconds per call on a CPU).
    """
    hi = jax.lax.Precision.HIGHEST  # TPUs otherwise multiply in bfloat16
    xc_nd = x_nd - jnp.mean(x_nd, axis=0, keepdims=True)
    p = min(dims + oversample, *x_nd.shape)
    q_np, _ = jnp.linalg.qr(jnp.matmul(xc_nd, jax.random.normal(key, (x_nd.shape[1], p)),
                                       precision=hi))
    for _ in range(power_iters):
        q_dp, _ = jnp.linalg.qr(jnp.matmul(xc_nd.T, q_np, precision=hi))
        q_np, _ = jnp.linalg.qr(jnp.matmul(xc_nd, q_dp, precision=hi))
    _, _, vt_pd = jnp.linalg.svd(jnp.matmul(q_np.T, xc_nd, precision=hi), full_matrices=False)
    return jnp.matmul(xc_nd, vt_pd[:dims].T, precision=hi)


def prepare(x_nd: jax.Array, key: jax.Array, cfg: VAEaseConfig) -> jax.Array:
    """The training input: standardised, PCA-projected if asked, and standardised again."""
    x_nd = standardise(jnp.asarray(x_nd, jnp.float32))
    if 0 < cfg.pca_dims < min(x_nd.shape):
        x_nd = standardise(pca_project(x_nd, cfg.pca_dims, key))
    return x_nd


def vaease_active_dims(x_nd: jax.Array, key: jax.Array, cfg: VAEaseConfig) -> jax.Array:
    """Prepares ``x_nd`` ``[n, d]``, trains VAEase, and returns per-sample active counts ``[n]``."""
    k_proj, k_train = jax.random.split(key)
    x_np = prepare(x_nd, k_proj, cfg)
    params, _ = train(x_np, k_train, cfg)
    return active_dims(params, x_np, cfg.min_gap)
