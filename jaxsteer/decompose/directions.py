"""The result of a decomposition: a set of unit directions in gradient space, with its provenance.

A `DirectionSet` is what PCA and the sparse autoencoder both return, what `jaxsteer.checkpoint`
saves and loads, and what steering consumes. It is a pytree (a `flax.struct.dataclass`), so it can
be passed into jitted functions; the metadata dict is static (not a leaf) and JSON-ready.

Axis letters: k directions, d gradient width (the token rows' embedding width times their
count), r computed spectrum length (r >= k for PCA), l SAE latents.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxsteer.pages.html import esc, facts_table, table
from jaxsteer.pages.svg import bars

# The authors' significance rule: a component counts when its explained-variance ratio exceeds
# 2.5 times the ratio every one of D components would get from isotropic noise (1 / D).
SIGNIFICANCE_FACTOR = 2.5


@struct.dataclass
class SAEParams:
    """TopK SAE parameters (trained by `jaxsteer.decompose.sae`; a DirectionSet of an SAE
    carries them): w_enc [d, l], b_enc [l], w_dec [l, d] (unit rows), b_pre [d]."""

    w_enc: jax.Array
    b_enc: jax.Array
    w_dec: jax.Array
    b_pre: jax.Array


@struct.dataclass
class DirectionSet:
    """Unit directions found in a gradient matrix, plus what is needed to use and trust them.

    Attributes:
        directions: [k, d] unit rows, most important first (PCA: by singular value; SAE: by
            firing density).
        mean: [d] the mean subtracted before PCA (zeros when not centred); the SAE's pre-encoder
            bias for SAE directions.
        singular_values: [r] PCA singular values of the (centred) matrix, or None for an SAE.
        explained_variance_ratio: [r] share of the total variance of each PCA component, or None.
        density: [k] SAE firing density of each direction (fraction of samples), or None.
        sae: the trained SAE parameters, or None for PCA.
        metadata: JSON-ready provenance (model, prompt, token, method, N, seeds, versions, config).
            Static: it is not a pytree leaf and never enters a computation.
    """

    directions: jax.Array
    mean: jax.Array
    singular_values: jax.Array | None = None
    explained_variance_ratio: jax.Array | None = None
    density: jax.Array | None = None
    sae: SAEParams | None = None
    metadata: dict[str, Any] = struct.field(pytree_node=False, default_factory=dict)

    @property
    def k(self) -> int:
        """Number of directions."""
        return int(self.directions.shape[0])

    @property
    def dim(self) -> int:
        """Width d of each direction."""
        return int(self.directions.shape[-1])

    @property
    def method(self) -> str:
        """'pca' or 'sae' (from the metadata; 'unknown' for a hand-built set)."""
        return str(self.metadata.get("method", "unknown"))

    def significant_count(self) -> int:
        """Components with explained-variance ratio > 2.5 / d (authors' rule); 0 for an SAE.

        For a randomized PCA that kept only r components, the count is capped at r: compare it
        with ``len(explained_variance_ratio)`` to know whether it is a lower bound.
        """
        if self.explained_variance_ratio is None:
            return 0
        return significant_count(self.explained_variance_ratio, self.dim)

    def _repr_html_(self) -> str:
        """A notebook's view: provenance, and each direction's share of the variance (numbered
        from 0, as ``--indices``), significant ones marked."""
        m = self.metadata
        facts = {k: m[k] for k in ("model", "prompt", "token", "method") if k in m}
        facts |= {"directions": self.k, "width d": self.dim}
        body = ""
        if self.explained_variance_ratio is not None:
            ratios = np.asarray(self.explained_variance_ratio, np.float64)
            sig = self.significant_count()
            facts["significant (EV ratio > 2.5 / d)"] = sig
            rows = [(i, float(ratios[i]), "yes" if i < sig else "no")
                    for i in range(min(self.k, len(ratios)))]
            body = (bars(ratios[: max(16, self.k)], width=480, height=160,
                         threshold=SIGNIFICANCE_FACTOR / self.dim, title="spectrum")
                    + table(["direction", "EV ratio", "significant"], rows, numeric=[0, 1]))
        elif self.density is not None:
            rows = [(i, float(v)) for i, v in enumerate(np.asarray(self.density))]
            body = table(["direction", "firing density"], rows, numeric=[0, 1])
        return f"<div><b>DirectionSet</b> {esc(self.method)}{facts_table(facts)}{body}</div>"

    def replace_metadata(self, **updates: Any) -> DirectionSet:
        """A copy with ``updates`` merged into the metadata."""
        return self.replace(metadata={**self.metadata, **updates})


def significant_count(ratios_r: jax.Array | np.ndarray, dim: int) -> int:
    """Number of explained-variance ratios above ``2.5 / dim`` (the authors' complexity estimate).

    Args:
        ratios_r: [r] explained-variance ratios, in any order.
        dim: D, the number of columns of the decomposed matrix.

    Returns:
        The count, a Python int.
    """
    if dim <= 0:
        raise ValueError(f"dim must be positive, got {dim}")
    ratios = np.asarray(ratios_r, dtype=np.float64)
    return int(np.sum(ratios > SIGNIFICANCE_FACTOR / dim))


def unit_rows(x_nd: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Scales every row to unit L2 norm (all-zero rows stay zero).

    Args:
        x_nd: [n, d] matrix.
        eps: norms below this are treated as zero, so a zero gradient gives no NaN.

    Returns:
        [n, d] matrix of the same dtype.
    """
    norms_n1 = jnp.linalg.norm(x_nd, axis=-1, keepdims=True)
    return x_nd / jnp.maximum(norms_n1, eps).astype(x_nd.dtype)


def as_float(x: Any) -> jax.Array:
    """The input as a jax array in float32 (float64 kept when x64 is on and the input is f64)."""
    x = jnp.asarray(x)
    if x.dtype == jnp.float64:
        return x
    return x.astype(jnp.float32)


def fix_signs(dirs_kd: jax.Array) -> jax.Array:
    """Makes each row's largest-magnitude entry positive.

    A direction's sign is arbitrary; fixing it this way makes results comparable across runs,
    solvers and device counts (1 vs 8 devices must give allclose answers).

    Args:
        dirs_kd: [k, d] rows.

    Returns:
        [k, d] rows, each possibly negated.
    """
    idx_k = jnp.argmax(jnp.abs(dirs_kd), axis=-1)
    pivot_k = jnp.take_along_axis(dirs_kd, idx_k[:, None], axis=-1)[:, 0]
    sign_k = jnp.where(pivot_k < 0, -1.0, 1.0).astype(dirs_kd.dtype)
    return dirs_kd * sign_k[:, None]
