"""jaxsteer: ELROND steering directions for text-to-image diffusion models, in JAX.

    import jaxsteer
    bundle = jaxsteer.load_model("stabilityai/sd-turbo")          # or a local folder, or "shapes"
    col = jaxsteer.Collector(bundle, jaxsteer.SamplerConfig(steps=1), jaxsteer.make_mesh())
    prompt = col.prepare("a picture of a monster", "monster")
    grads = col(prompt, pair_indices, key, latents_a, latents_b)  # [pairs, rows, d]
    ds = jaxsteer.decompose.pca(grads.reshape(len(grads), -1), k=16)
    jaxsteer.save(ds, "monster_dirs"); ds = jaxsteer.load("monster_dirs")

A command's run config nests the model and sampler settings (``--model`` / ``--steps`` on the
command line)::

    from jaxsteer import collect
    from jaxsteer.models import ModelConfig
    cfg = collect.CollectRun(model=ModelConfig(name="shapes"), sampler=jaxsteer.SamplerConfig(
        steps=4), prompt="a red circle", token="circle", pairs=64)
    collect.run(cfg)
"""

__version__ = "0.1.0"

from jaxsteer import decompose as decompose  # noqa: E402
from jaxsteer.checkpoint import load as load  # noqa: E402
from jaxsteer.checkpoint import save as save  # noqa: E402
from jaxsteer.collect import Collector as Collector  # noqa: E402
from jaxsteer.collect import draw_pairs as draw_pairs  # noqa: E402
from jaxsteer.decompose import DirectionSet as DirectionSet  # noqa: E402
from jaxsteer.errors import UserError as UserError  # noqa: E402
from jaxsteer.models import ModelBundle as ModelBundle  # noqa: E402
from jaxsteer.models import load as load_model  # noqa: E402
from jaxsteer.sample import read_pool as read_pool  # noqa: E402
from jaxsteer.sampling import SamplerConfig as SamplerConfig  # noqa: E402
from jaxsteer.sharding import make_mesh as make_mesh  # noqa: E402
from jaxsteer.store import read_gradients as read_gradients  # noqa: E402

__all__ = [
    "Collector", "DirectionSet", "ModelBundle", "SamplerConfig", "UserError", "decompose",
    "draw_pairs", "load", "load_model", "make_mesh", "read_gradients", "read_pool", "save",
]
