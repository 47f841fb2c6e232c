"""The ground-truth benchmark's settings (`jaxsteer bench groundtruth --groundtruth.*`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from jaxsteer.complexity import ComplexityConfig
from jaxsteer.config import opt
from jaxsteer.errors import UserError
from jaxsteer.models.bundled import PRESETS
from jaxsteer.shapes.captions import spec

# (caption, free factors): two or more prompts per count of free factors except 5, which only
# "a shape" has; none is a held-out combination.
DEFAULT_PROMPTS = (
    "a small red circle in the middle", "a large blue square at the top left",  # 0 free
    "a red circle in the middle", "a small yellow square on the left",           # 1
    "a red circle on the left", "a large blue square",                           # 2
    "a red circle", "a green triangle", "a circle on the left",                  # 3
    "a circle", "a large shape",                                                 # 4
    "a shape",                                                                   # 5
)
TARGETS = {"recovery": 0.9, "complexity": 0.8, "spread_ratio": 2.0, "fidelity": 0.95}
CONTINUOUS = ("hue", "x", "y", "size")


@dataclasses.dataclass(frozen=True)
class GroundTruthConfig:
    model: str = opt("shapes", "bundled shapes model, or a pipeline folder of a shapes-world "
                     "model (e.g. from `jaxsteer train-shapes`)")
    preset: str = opt("shapes", "sampler of the model: an entry of models.bundled.PRESETS")
    turbo: str = opt("shapes-turbo", "sampler of the collapsed generator of the diversity "
                     "section (same weights): a PRESETS entry")
    prompts: tuple[str, ...] = opt(DEFAULT_PROMPTS, "complexity prompts (>= 12 spanning 0..5 "
                                   "free factors for a meaningful rank correlation)")
    recovery_prompts: tuple[str, ...] = opt(("a red circle", "a circle", "a shape"),
                                            "prompts of the factor-recovery section")
    diversity_prompts: tuple[str, ...] = opt(("a red circle", "a large blue square", "a circle"),
                                             "prompts of the diversity section")
    rows: str = opt("word", "token rows differentiated and steered: word (the caption's type "
                    "word, or 'shape') | all (every row of the text embedding)",
                    choices=("word", "all"))
    pool: int = opt(16, "pool images per prompt (base sampler; also its diversity sample)")
    pairs: int = opt(96, "gradients per prompt (and per diversity prompt on the turbo sampler)")
    timestep: int | None = opt(None, "training timestep the pool image A is noised to; default: "
                               "the sampler's first (noisiest) step, the authors' choice")
    batch: int = opt(16, "images or pairs per compiled call, for every prompt (padded)")
    k: int = opt(3, "top directions of each method steered for factor recovery")
    strengths: tuple[float, ...] = opt((-1.0, -0.5, 0.5, 1.0), "steering strengths, multiples "
                                       "of the steered rows' mean norm (0, the reference, is "
                                       "always rendered)")
    seeds: int = opt(3, "seeds per (direction, strength)")
    usable_background: float = opt(0.3, "brightest background channel in [0, 1] of an image "
                                   "the probe's readings are trusted on")
    sae_k: int = opt(4, "SAE active latents (the authors' 32 is for SDXL's 2048-wide rows)")
    sae_epochs: int = opt(100, "SAE epochs")
    sae_batch: int = opt(32, "SAE minibatch")
    diversity_n: int = opt(48, "turbo samples per diversity prompt, without and with steering "
                           "(the same seeds); also the turbo gradients' pool")
    diversity_directions: str = opt("turbo", "directions of the diversity section: turbo (its "
                                    "own gradients, the authors' recipe) | base",
                                    choices=("turbo", "base"))
    diversity_strength: tuple[float, ...] = opt((0.5, 1.0), "random steering strength range "
                                                "lo,hi (multiples of the rows' mean norm)")
    diversity_mix: int = opt(1, "directions summed per random offset (the paper's variant: 3)")
    diversity_top: int = opt(0, "use only the first `top` directions of each method (0 = all "
                             "PCA directions kept for recovery and every SAE direction)")
    baseline_steps: tuple[int, ...] = opt((), "diversity distillation baseline (Gandikota & Bau "
                                          "2025): base-preset steps before the turbo sampler "
                                          "takes over, one variant each (e.g. 1); empty: off")
    complexity: ComplexityConfig = opt(default_factory=ComplexityConfig,
                                       help="complexity estimators")
    seed: int = opt(0, "seed of pools, pairs, noise, steering seeds and random offsets")
    devices: int = opt(-1, "devices to use; -1 = all local devices")
    out: Path = opt(Path("runs/bench/groundtruth.json"), "JSON of every number")

    def __post_init__(self):
        for name in (self.preset, self.turbo):
            if name not in PRESETS:
                raise UserError(f"no sampler preset for model {name!r}: use one of "
                                f"{', '.join(PRESETS)}")
        for p in set(self.prompts) | set(self.recovery_prompts) | set(self.diversity_prompts):
            spec(p)  # a caption outside the grammar fails here, before anything compiles
        if len(self.prompts) < 2:
            raise UserError("--prompts: give at least 2 prompts (>= 12 for a meaningful "
                            "rank correlation)")
        if min(self.pool, self.diversity_n) < 2 or min(self.batch, self.k, self.seeds) < 1:
            raise UserError("--pool and --diversity-n must be >= 2; --batch, --k and --seeds >= 1")
        if self.pairs < max(self.k, self.complexity.mle_k + 2):
            raise UserError(f"--pairs must be >= max(k, complexity.mle_k + 2) = "
                            f"{max(self.k, self.complexity.mle_k + 2)}")
        if not self.strengths or 0.0 in self.strengths:
            raise UserError("--strengths: give non-zero strengths (0 is always rendered)")
        turbo_steps = PRESETS[self.turbo]["steps"]
        if any(not 1 <= k < turbo_steps for k in self.baseline_steps):
            raise UserError(f"--baseline-steps must each be in 1..{turbo_steps - 1} (the turbo "
                            f"sampler's {turbo_steps} steps), got {self.baseline_steps}")
        lo_hi = self.diversity_strength
        if len(lo_hi) != 2 or lo_hi[0] > lo_hi[1]:
            raise UserError(f"--diversity-strength must be lo,hi, got {lo_hi}")

    def all_prompts(self) -> tuple[str, ...]:
        """Every prompt of the three sections, each once, in first-seen order."""
        return tuple(dict.fromkeys(self.prompts + self.recovery_prompts + self.diversity_prompts))


@dataclasses.dataclass(frozen=True)
class GroundTruthBench:
    """`jaxsteer bench groundtruth`: its flags are ``--groundtruth.*`` (maintainers script them)."""

    groundtruth: GroundTruthConfig = opt(default_factory=GroundTruthConfig,
                                         help="the shapes-world benchmark")
