"""`jaxsteer demo`: sample -> collect -> decompose -> steer -> report, offline, on a bundled model.

The README's first command. On a 2-core CPU it finishes in a few minutes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from jaxsteer import collect, records, report, sample, steer
from jaxsteer.config import opt
from jaxsteer.decompose import run as decompose
from jaxsteer.errors import UserError
from jaxsteer.models import ModelConfig, load
from jaxsteer.models.bundled import ASSETS
from jaxsteer.sampling import SamplerConfig
from jaxsteer.survey import target_word

# Prompt and word the demo explores on each bundled model.
DEFAULT_PROMPTS = {"shapes": ("a circle", "circle"), "tiny": ("a picture of a monster", "monster")}


def default_model() -> str:
    """The bundled shapes model when this installation has it, else the tiny random model."""
    return "shapes" if (ASSETS / "shapes" / "model_index.json").exists() else "tiny"


@dataclasses.dataclass(frozen=True)
class DemoRun:
    model: str | None = opt(None, "bundled model (default: shapes if installed, else tiny)")
    prompt: str | None = opt(None, "prompt (default: the model's demo prompt)")
    token: str | None = opt(None, "word to differentiate (default: the demo prompt's concept, "
                            "or the last word of --prompt)")
    pool: int = opt(64, "pool size")
    pairs: int = opt(128, "gradients to collect")
    steps: int = opt(4, "sampling steps")
    k: int = opt(8, "PCA directions kept")
    directions: int = opt(3, "directions shown as steering grids")
    alphas: str = opt("-0.5:0.5:5", "steering strengths (multiples of the word's embedding norm)")
    seeds: tuple[int, ...] = opt((0, 1, 2), "seeds of the steering grids")
    devices: int = opt(-1, "devices to use; -1 = all local devices")
    out: Path = opt(Path("runs/demo"), "output folder")

    def __post_init__(self):
        if self.pool < 2 or self.pairs < 2 or self.k < 1 or self.directions < 1:
            raise UserError("--pool and --pairs must be >= 2, --k and --directions >= 1")


def demo_words(model: str, prompt: str | None, token: str | None) -> tuple[str, str]:
    """(prompt, word): the model's demo pair, or the given prompt with its last word unless a
    --token is given (a --prompt alone must not keep the demo prompt's word)."""
    default_prompt, default_token = DEFAULT_PROMPTS.get(model, (None, None))
    if prompt:
        return prompt, token or target_word(prompt, None)
    if not default_prompt:
        raise UserError(f"no demo prompt for model {model!r}: pass --prompt (and --token)")
    return default_prompt, token or default_token


def run(cfg: DemoRun) -> dict:
    model = cfg.model or default_model()
    out = records.check_out(cfg.out)
    # Model, prompt and word are checked before anything is sampled or written: a word that is
    # not in the prompt would otherwise fail in step 2, after the pool.
    bundle = load(model)
    prompt, token = demo_words(model, cfg.prompt, cfg.token)
    bundle.model.tokenize(prompt).rows(token)
    print(f"jaxsteer demo: the report will be at {out / 'report.html'} "
          f"(model {model!r}, prompt {prompt!r}, word {token!r})", flush=True)
    common = dict(model=ModelConfig(name=model), sampler=SamplerConfig(steps=cfg.steps),
                  devices=cfg.devices)
    print("1/4 sampling the pool", flush=True)
    sample.run(sample.SampleRun(prompt=prompt, n=cfg.pool, out=out / "pool", **common))
    print("2/4 collecting gradients", flush=True)
    got = collect.run(collect.CollectRun(prompt=prompt, token=token, pool=str(out / "pool"),
                                         pairs=cfg.pairs, out=out / "grads", **common))
    print("3/4 decomposing (PCA)", flush=True)
    k = min(cfg.k, cfg.pairs - 1)
    dec = decompose.run(decompose.DecomposeRun(run_dir=out / "grads", k=k,
                                               out=out / "directions", overwrite=True))
    print("4/4 steering", flush=True)
    shown = tuple(range(min(cfg.directions, k)))
    steer.run(steer.SteerRun(directions=out / "directions", indices=shown, alphas=cfg.alphas,
                                  seeds=cfg.seeds, out=out / "steer", **common))
    facts = {"gradients": got["gradients"], "significant directions (EV ratio > 2.5/D)":
             dec.get("significant"), "directions shown": ", ".join(map(str, shown))}
    path = report.build(out, f"jaxsteer demo: {prompt!r}", facts)
    print(f"jaxsteer demo: done; open {path}")
    return {"report": str(path), "gradients": got["gradients"], "grads_per_s": got["grads_per_s"],
            "significant": dec.get("significant")}
