"""The one interface every model family implements, so nothing downstream branches on family.

A `DiffusionModel` is a frozen, hashable dataclass (a valid ``static_argnums`` argument) that
holds module definitions and constants, never weights. Weights are a separate pytree ``params``
that is always passed into jitted functions as an argument. Methods are pure functions of
(params, arrays); tokenization runs on the host and returns int arrays, so per-prompt data enters
jit as arrays and one compiled program serves every prompt of a survey.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Protocol

import flax.struct
import jax
import numpy as np

from jaxsteer.errors import UserError


@flax.struct.dataclass
class TextCond:
    """Text conditioning: ``emb`` [..., t, d] is what the method differentiates.

    ``extra`` holds family-specific conditioning that is not differentiated (SDXL's pooled
    embedding), as a dict of arrays with the same leading batch axes as ``emb``.
    """

    emb: jax.Array
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Tokens:
    """A tokenized prompt: ids for each text encoder and where each word sits.

    Attributes:
      ids_et: [encoders, max_tokens] int32 token ids, padded.
      words: (word, positions) for every word of the prompt, in order; positions index rows of
        the token embedding (bos is row 0).
      prompt: the prompt as given.
    """

    ids_et: np.ndarray
    words: tuple[tuple[str, tuple[int, ...]], ...]
    prompt: str

    def rows(self, word: str) -> tuple[int, ...]:
        """Token rows of ``word`` (every occurrence; several words if ``word`` has spaces)."""
        wanted = [w for w in re.findall(r"\S+", word.lower())]
        if not wanted:
            raise UserError("--token is empty: name a word of the prompt")
        words = [w for w, _ in self.words]
        rows: list[int] = []
        for i in range(len(words) - len(wanted) + 1):
            if words[i:i + len(wanted)] == wanted:
                for _, pos in self.words[i:i + len(wanted)]:
                    rows += pos
        if not rows:
            raise UserError(
                f"--token {word!r} is not a word of the prompt {self.prompt!r}; "
                f"its words are: {', '.join(words)}")
        return tuple(sorted(set(rows)))


@dataclasses.dataclass(frozen=True)
class NoiseSchedule:
    """The training noise schedule of a model (from its scheduler config)."""

    alphas_cumprod: tuple[float, ...]   # [num_train_timesteps], cumulative product of 1 - beta
    prediction_type: str = "epsilon"    # "epsilon" | "v_prediction" | "sample"
    set_alpha_to_one: bool = True       # DDIM's final alpha: 1, or alphas_cumprod[0]
    steps_offset: int = 0
    timestep_spacing: str = "leading"   # "leading" | "trailing" | "linspace"

    @property
    def num_train_timesteps(self) -> int:
        return len(self.alphas_cumprod)


def alphas_cumprod_from_config(cfg: dict[str, Any]) -> np.ndarray:
    """[T] cumulative alphas for the beta schedules diffusers' SD/SDXL schedulers use."""
    n = int(cfg.get("num_train_timesteps", 1000))
    kind = cfg.get("beta_schedule", "scaled_linear")
    start, end = float(cfg.get("beta_start", 0.00085)), float(cfg.get("beta_end", 0.012))
    if cfg.get("trained_betas") is not None:
        betas = np.asarray(cfg["trained_betas"], np.float64)
    elif kind == "linear":
        betas = np.linspace(start, end, n, dtype=np.float64)
    elif kind == "scaled_linear":
        betas = np.linspace(start**0.5, end**0.5, n, dtype=np.float64) ** 2
    elif kind == "squaredcos_cap_v2":
        f = lambda t: np.cos((t + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
        ts = np.arange(n, dtype=np.float64)
        betas = np.minimum(1 - f((ts + 1) / n) / f(ts / n), 0.999)
    else:
        raise UserError(f"unsupported beta_schedule {kind!r} in the scheduler config")
    return np.cumprod(1.0 - betas)


def schedule_from_config(cfg: dict[str, Any]) -> NoiseSchedule:
    return NoiseSchedule(
        alphas_cumprod=tuple(float(a) for a in alphas_cumprod_from_config(cfg)),
        prediction_type=cfg.get("prediction_type", "epsilon"),
        set_alpha_to_one=bool(cfg.get("set_alpha_to_one", True)),
        steps_offset=int(cfg.get("steps_offset", 0)),
        timestep_spacing=cfg.get("timestep_spacing", "leading"),
    )


class DiffusionModel(Protocol):
    """What collect / sample / steer / survey may use of a model. All methods are pure."""

    family: str
    embed_dim: int                        # d: width of the differentiated token embedding
    max_tokens: int                       # t: 77 for CLIP
    latent_shape: tuple[int, int, int]    # (c, h, w) of the denoiser's input
    schedule: NoiseSchedule

    def tokenize(self, prompt: str, allow_empty: bool = False) -> Tokens:
        """Host-side; ``allow_empty`` gives the empty prompt of the unconditional branch."""

    def encode_text(self, params: Any, ids_bet: jax.Array) -> TextCond:
        """[b, encoders, t] int ids -> TextCond with emb [b, t, d]."""

    def predict(self, params: Any, x_bchw: jax.Array, t_b: jax.Array, cond: TextCond) -> jax.Array:
        """The denoiser's raw output (epsilon, v or x0, per ``schedule.prediction_type``)."""

    def encode_image(self, params: Any, images_bhwc: jax.Array) -> jax.Array:
        """Images in [-1, 1], [b, H, W, 3] -> latents [b, c, h, w] (scaled as the denoiser
        wants)."""

    def decode(self, params: Any, latents_bchw: jax.Array) -> jax.Array:
        """Latents -> images in [-1, 1], [b, H, W, 3]."""


@dataclasses.dataclass(frozen=True)
class ModelBundle:
    """A model definition, its weights, and where they came from (for run metadata)."""

    model: DiffusionModel
    params: Any
    info: dict = dataclasses.field(default_factory=dict, compare=False, hash=False)
