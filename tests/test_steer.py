import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer import checkpoint, cli, sharding
from jaxsteer.decompose import DirectionSet
from jaxsteer.errors import UserError
from jaxsteer.models.base import TextCond
from jaxsteer.sample import encode_prompt
from jaxsteer.sampling import SamplerConfig
from jaxsteer.steer import parse_alphas, render_batches, steer_embeddings

PROMPT = "a picture of a monster"
ROWS = tuple(range(12, 19))


@pytest.fixture(scope="module")
def directions(tiny_folder, tmp_path_factory):
    rng = np.random.default_rng(0)
    dirs = rng.standard_normal((4, 7 * 32)).astype(np.float32)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    ds = DirectionSet(directions=jnp.asarray(dirs), mean=jnp.zeros(7 * 32),
                      metadata={"model": str(tiny_folder), "prompt": PROMPT, "token": "monster",
                                "token_rows": list(ROWS), "embed_dim": 32, "method": "pca"})
    path = tmp_path_factory.mktemp("ds") / "dirs"
    checkpoint.save(ds, path)
    return path, dirs


def test_alpha_zero_is_the_unsteered_image_and_batching_commutes(tiny_bundle, directions):
    _, dirs = directions
    sampler = SamplerConfig(steps=2)
    mesh = sharding.make_mesh()
    cond, _ = encode_prompt(tiny_bundle, PROMPT, False)
    alphas = jnp.asarray([0.0, -3.0, 3.0, 0.0], jnp.float32)
    offsets = jnp.asarray(np.stack([dirs[1].reshape(7, 32)] * 4))
    emb = steer_embeddings(cond.emb, ROWS, offsets, alphas)
    keys = jax.vmap(jax.random.key)(jnp.asarray([5, 5, 5, 5]))
    steered = render_batches(tiny_bundle, sampler, mesh, TextCond(emb=emb), None, keys, 8)
    plain = render_batches(tiny_bundle, sampler, mesh,
                           TextCond(emb=jnp.broadcast_to(cond.emb, (4, 77, 32))), None, keys, 8)
    np.testing.assert_array_equal(steered[0], plain[0])          # alpha 0: bit for bit
    assert not np.allclose(steered[1], steered[2])                # steering changes the image
    # One at a time (batches of one, padded) equals the batch of alphas.
    one_by_one = np.concatenate([render_batches(tiny_bundle, sampler, mesh,
                                                TextCond(emb=emb[i:i + 1]), None, keys[i:i + 1], 8)
                                 for i in (1, 2)])
    np.testing.assert_allclose(one_by_one, steered[1:3], rtol=1e-5, atol=1e-5)


def test_steer_cli_writes_one_grid_per_direction(tiny_folder, directions, tmp_path):
    path, _ = directions
    out = tmp_path / "steer"
    assert cli.main(["steer", str(path), "--model", str(tiny_folder), "--steps", "2",
                     "--indices", "0,3", "--alphas", "-1:1:3", "--seeds", "0",
                     "--out", str(out)]) == 0
    from PIL import Image
    grids = sorted(out.glob("*.png"))
    assert [g.name for g in grids] == ["direction_000.png", "direction_003.png"]
    assert Image.open(grids[0]).size[0] > 3 * 64


@pytest.mark.parametrize("flags, message", [
    (["--indices", "9"], "out of range"),
    (["--alphas", "1:2"], "start:stop:count"),
    (["--seeds", ""], "--seeds is empty"),
])
def test_bad_steer_input_is_refused_before_writing(tiny_folder, directions, tmp_path, capsys,
                                                   flags, message):
    path, _ = directions
    out = tmp_path / "steer"
    args = ["steer", str(path), "--model", str(tiny_folder), "--steps", "2", "--out", str(out)]
    assert cli.main(args + flags) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_directions_from_another_model_are_refused(tiny_folder, tmp_path, capsys):
    ds = DirectionSet(directions=jnp.ones((2, 48)) / 48 ** 0.5, mean=jnp.zeros(48),
                      metadata={"model": "other/model", "prompt": PROMPT, "token": "monster",
                                "token_rows": [12], "embed_dim": 48})
    checkpoint.save(ds, tmp_path / "other")
    assert cli.main(["steer", str(tmp_path / "other"), "--model", str(tiny_folder),
                     "--indices", "0", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "do not fit this model" in err and "embedding 32" in err


def test_alpha_ranges():
    np.testing.assert_allclose(parse_alphas("-3:3:7"), np.arange(-3, 4))
    np.testing.assert_allclose(parse_alphas("0, 1.5"), [0, 1.5])
    with pytest.raises(UserError):
        parse_alphas("a:b:c")


def test_directions_of_two_words_compose(tiny_folder, directions, tmp_path):
    """A second word's direction ('picture', rows 2..8) is applied on its own rows in every
    image."""
    path, dirs = directions
    other = DirectionSet(directions=jnp.asarray(dirs), mean=jnp.zeros(7 * 32),
                         metadata={"model": str(tiny_folder), "prompt": PROMPT, "token": "picture",
                                   "token_rows": list(range(2, 9)), "embed_dim": 32})
    checkpoint.save(other, tmp_path / "picture")
    args = ["steer", str(path), "--model", str(tiny_folder), "--steps", "2", "--indices", "0",
            "--alphas", "0", "--seeds", "0"]
    assert cli.main(args + ["--out", str(tmp_path / "plain")]) == 0
    assert cli.main(args + ["--compose", f"{tmp_path / 'picture'}:1:2", "--out",
                            str(tmp_path / "both")]) == 0
    from PIL import Image
    a = np.asarray(Image.open(tmp_path / "plain" / "direction_000.png"))
    b = np.asarray(Image.open(tmp_path / "both" / "direction_000.png"))
    assert a.shape == b.shape and not np.array_equal(a, b)
    assert cli.main(args + ["--compose", "nonsense", "--out", str(tmp_path / "x")]) == 2


def test_diversify_compares_the_same_seeds_with_and_without(tiny_folder, directions, tmp_path,
                                                            capsys):
    """Lives beside the steering tests: it reuses their compiled renderer."""
    import json
    path, _ = directions
    out = tmp_path / "div"
    assert cli.main(["diversify", str(path), "--model", str(tiny_folder), "--steps", "2",
                     "--n", "8", "--relative", "--strength", "1,2", "--out", str(out)]) == 0
    result = json.loads((out / "diversity.json").read_text())
    assert set(result) == {"with", "without"}
    assert result["with"]["vendi"] != result["without"]["vendi"]
    assert 1.0 <= result["without"]["vendi"] <= 8.0
    assert "pairwise cos dist" in capsys.readouterr().out
    assert cli.main(["diversify", str(path), "--model", str(tiny_folder), "--strength", "2,1",
                     "--out", str(tmp_path / "bad")]) == 2


def test_diversify_baseline_is_diversity_distillation_on_the_same_seeds(tiny_folder, directions,
                                                                         tmp_path, capsys):
    """--baseline: the base model (here the tiny model itself, with guidance) for the first
    step, the model for the second; the report gives its cost in base-model calls."""
    import json
    path, _ = directions
    args = ["diversify", str(path), "--model", str(tiny_folder), "--steps", "2", "--n", "8",
            "--relative", "--strength", "1,2"]
    out = tmp_path / "div"
    assert cli.main(args + ["--baseline", "--base-model", str(tiny_folder), "--base-guidance",
                            "4", "--out", str(out)]) == 0
    result = json.loads((out / "diversity.json").read_text())
    assert set(result) == {"with", "without", "baseline_1"}
    assert result["baseline_1"]["calls"] == {"base": 2, "student": 1}   # one CFG step, then one
    assert result["without"]["calls"] == result["with"]["calls"] == {"base": 0, "student": 2}
    assert result["baseline_1"]["vendi"] != result["without"]["vendi"]
    assert (out / "samples_baseline_1.png").exists()
    assert "base calls" in capsys.readouterr().out
    assert cli.main(args + ["--baseline", "--out", str(tmp_path / "b")]) == 2
    assert "--base-model" in capsys.readouterr().err
    assert cli.main(args + ["--baseline", "--base-model", str(tiny_folder), "--baseline-steps",
                            "2", "--out", str(tmp_path / "c")]) == 2
    assert "1..1" in capsys.readouterr().err


def test_a_run_folder_without_directions_is_refused(tiny_folder, tmp_path, capsys):
    from jaxsteer.store import write_test_store
    write_test_store(tmp_path / "run", np.zeros((4, 32)), {})
    assert cli.main(["steer", str(tmp_path / "run"), "--model", str(tiny_folder),
                     "--out", str(tmp_path / "o")]) == 2
    assert "jaxsteer decompose" in capsys.readouterr().err
