import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer.errors import UserError
from jaxsteer.models import load


def test_loads_the_saved_folder_with_the_user_path(tiny_bundle):
    m = tiny_bundle.model
    assert m.family == "sd"
    assert m.embed_dim == 32 and m.max_tokens == 77 and m.latent_shape == (4, 8, 8)
    assert set(tiny_bundle.params) == {"unet", "text_encoder", "vae"}


def test_words_map_to_their_token_rows(tiny_bundle):
    tok = tiny_bundle.model.tokenize("A picture of a monster")
    words = [w for w, _ in tok.words]
    assert words == ["a", "picture", "of", "a", "monster"]
    # The character tokenizer spells words out: 'monster' is rows 12..18 after bos at row 0.
    assert tok.rows("monster") == tuple(range(12, 19))
    assert tok.rows("a") == (1, 11)                    # every occurrence
    assert tok.rows("of a") == (9, 10, 11)             # several words
    with pytest.raises(UserError, match="not a word of the prompt"):
        tok.rows("dragon")


def test_bad_prompts_are_refused(tiny_bundle):
    with pytest.raises(UserError, match="empty"):
        tiny_bundle.model.tokenize("   ")
    with pytest.raises(UserError, match="longer|long"):
        tiny_bundle.model.tokenize("monster " * 20)


def test_encode_decode_shapes(tiny_bundle):
    m, p = tiny_bundle.model, tiny_bundle.params
    cond = m.encode_text(p, jnp.asarray(m.tokenize("a cat").ids_et)[None])
    assert cond.emb.shape == (1, 77, 32)
    images = jax.jit(m.decode)(p, jnp.zeros((2, 4, 8, 8)))
    assert images.shape == (2, 16, 16, 3)
    assert float(jnp.max(jnp.abs(images))) <= 1.0


def test_bfloat16_load_casts_weights(tiny_folder):
    b = load(str(tiny_folder), dtype="bfloat16")
    leaves = jax.tree.leaves(b.params["unet"])
    assert all(x.dtype == jnp.bfloat16 for x in leaves)


def test_unknown_model_and_pickled_weights_give_clear_errors(tmp_path, tiny_folder):
    with pytest.raises(UserError, match="could not get model"):
        load("nobody/no-such-model")
    with pytest.raises(UserError, match="not found"):
        load(str(tmp_path / "missing" / "folder"))
    with pytest.raises(UserError, match="not a diffusers pipeline"):
        load(str(tmp_path))
    # A folder whose UNet ships only a pickled .bin is refused unless the user allows pickle.
    import shutil
    bad = tmp_path / "pickled"
    shutil.copytree(tiny_folder, bad)
    for f in [*(bad / "unet").glob("*.msgpack"), *(bad / "unet").glob("*.safetensors")]:
        f.unlink()
    (bad / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(UserError, match="allow-pickle"):
        load(str(bad))


def test_pytorch_safetensors_convert_without_torch(tmp_path, tiny_folder, tiny_bundle):
    """A safetensors-only (PyTorch layout) UNet loads through the torch-free converter."""
    import shutil

    from flax.traverse_util import flatten_dict
    from safetensors.numpy import save_file
    folder = tmp_path / "pt"
    shutil.copytree(tiny_folder, folder)
    for f in (folder / "unet").glob("*.msgpack"):
        f.unlink()
    # Write the Flax weights under PyTorch names/layouts (the inverse of diffusers' renaming).
    pt = {}
    for path, v in flatten_dict(tiny_bundle.params["unet"]).items():
        v = np.asarray(v)
        name = ".".join(str(k) for k in path)
        if path[-1] == "kernel":
            v = v.transpose(3, 2, 0, 1) if v.ndim == 4 else v.T
            name = name[: -len("kernel")] + "weight"
        elif path[-1] == "scale":
            name = name[: -len("scale")] + "weight"
        pt[_torch_name(name)] = np.ascontiguousarray(v)
    save_file(pt, folder / "unet" / "diffusion_pytorch_model.safetensors")
    b = load(str(folder))
    a, c = flatten_dict(tiny_bundle.params["unet"]), flatten_dict(b.params["unet"])
    assert a.keys() == c.keys()
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(c[k]))


def _torch_name(flax_name: str) -> str:
    """diffusers' Flax names use `_0` suffixes where PyTorch uses `.0` indices."""
    import re
    return re.sub(r"_(\d+)(?=\.|$)", r".\1", flax_name)


def test_fused_attention_matches_diffusers_attention(tiny_folder, tiny_bundle):
    """The jax.nn.dot_product_attention path (xla on CPU) gives diffusers' UNet output."""
    from jaxsteer.models.base import TextCond
    fused = load(str(tiny_folder), attention="xla")
    assert fused.model != tiny_bundle.model  # traced apart: separate compiled programs
    x = jax.random.normal(jax.random.key(0), (2, 4, 8, 8))
    emb = jax.random.normal(jax.random.key(1), (2, 77, 32))
    t = jnp.asarray([999, 10])
    ref = jax.jit(tiny_bundle.model.predict)(tiny_bundle.params, x, t, TextCond(emb=emb))
    got = jax.jit(fused.model.predict)(fused.params, x, t, TextCond(emb=emb))
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-4, atol=1e-4)
