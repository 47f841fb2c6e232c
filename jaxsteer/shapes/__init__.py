"""The shapes world (DESIGN.md section 4): a synthetic text-to-image world whose factors of
variation (type, hue, x, y, size) are known, a model trained on it, and a probe that reads the
factors back from any image.

Modules: `captions` (grammar, factor bands, train / held-out split), `render` (numpy or jnp
renderer, batch sampler), `tokenizer` (one CLIP token per grammar word), `probe` (factors from
images), `model` (UNet + CLIP text encoder, pipeline folder), `train` (`jaxsteer train-shapes`),
`sample` (DDIM + CFG), `evaluate` (probe-based quality), `assets` (the bundled model).
"""

from jaxsteer.shapes.assets import ASSET_DIR as ASSET_DIR
from jaxsteer.shapes.assets import verify as verify_assets
from jaxsteer.shapes.captions import FACTORS as FACTORS
from jaxsteer.shapes.captions import HELDOUT_CAPTIONS as HELDOUT_CAPTIONS
from jaxsteer.shapes.captions import RANGES as RANGES
from jaxsteer.shapes.captions import TRAIN_CAPTIONS as TRAIN_CAPTIONS
from jaxsteer.shapes.captions import TYPES as TYPES
from jaxsteer.shapes.captions import CaptionSpec as CaptionSpec
from jaxsteer.shapes.captions import spec as spec
from jaxsteer.shapes.evaluate import evaluate as evaluate
from jaxsteer.shapes.evaluate import score as score
from jaxsteer.shapes.probe import measure as measure
from jaxsteer.shapes.render import render as render
from jaxsteer.shapes.render import sample_batch as sample_batch
from jaxsteer.shapes.tokenizer import write_tokenizer as write_tokenizer
from jaxsteer.shapes.train import TrainShapesRun as TrainShapesRun
from jaxsteer.shapes.train import run as train_shapes  # `train` would hide the module

__all__ = [
           "ASSET_DIR",
           "FACTORS",
           "HELDOUT_CAPTIONS",
           "RANGES",
           "TRAIN_CAPTIONS",
           "TYPES",
           "CaptionSpec",
           "TrainShapesRun",
           "evaluate",
           "measure",
           "render",
           "sample_batch",
           "score",
           "spec",
           "train_shapes",
           "verify_assets",
           "write_tokenizer",
]
