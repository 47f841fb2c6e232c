"""`jaxsteer decompose` end to end on a tiny gradient store."""

import numpy as np
import pytest

from jaxsteer import checkpoint
from jaxsteer.config import parse
from jaxsteer.decompose.planted import planted_sparse, planted_subspace
from jaxsteer.decompose.run import DecomposeRun, run
from jaxsteer.errors import UserError
from jaxsteer.store import write_test_store

N, R, D, K = 128, 2, 16, 2


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A finished store: [n, r, d] gradients of a planted 2-dim subspace over 2 token rows."""
    run_dir = tmp_path_factory.mktemp("run")
    x_nd, _ = planted_subspace(0, N, R * D, K)
    write_test_store(run_dir, np.asarray(x_nd).reshape(N, R, D),
                     {"model": "tiny-sd", "embed_dim": D, "token_rows": [4, 5],
                      "token": "monster"})
    return run_dir


def cli(argv):
    return run(parse(DecomposeRun, [str(a) for a in argv], prog="jaxsteer decompose"))


def test_pca_run_writes_checkpoint_png_and_table(store, tmp_path, capsys):
    out = tmp_path / "pca"
    summary = cli([store, "--k", K, "--out", out, "--rows", 5])
    table = capsys.readouterr().out
    assert f"{N} gradients x {R * D}" in table
    assert "EV ratio" in table and "significant (EV ratio > 2.5/D" in table
    assert f": {K} of {min(N, R * D)} computed" in table
    assert summary["significant"] == K and summary["k"] == K and summary["dim"] == R * D
    assert len(summary["ev_ratio"]) == 5
    assert (out / "spectrum.png").read_bytes().startswith(b"\x89PNG")
    ds = checkpoint.load(out, expect={"embed_dim": D, "model": "tiny-sd", "token": "monster"})
    assert ds.directions.shape == (K, R * D)
    assert ds.metadata["token_rows"] == [4, 5] and ds.metadata["config"]["k"] == K
    with pytest.raises(UserError, match="exists"):  # before any work
        cli([store, "--out", out])


def test_sae_run_keeps_train_state(tmp_path, capsys):
    # Same data shape and SAE settings as test_sae.TINY, so the compiled step is shared.
    write_test_store(tmp_path / "run", planted_sparse(1, 512, 16, 16, 2)[0][:, None, :],
                     {"model": "tiny-sd", "embed_dim": 16})
    out = tmp_path / "sae"
    summary = cli([tmp_path / "run", "--method", "sae", "--k", 2, "--out", out,
                   "--sae.epochs", 4, "--sae.batch-size", 64, "--sae.patience", 0])
    table = capsys.readouterr().out
    assert "FVU" in table and "dead latents" in table
    assert 0 <= summary["dead_frac"] <= 1 and summary["l0"] <= 2
    assert (out / "density.png").exists()
    state = checkpoint.load_train_state(out)
    assert int(state.step) == 4 * (512 // 64) and state.cfg.k == 2
    ds = checkpoint.load(out, expect={"embed_dim": 16})
    assert ds.sae.w_dec.shape == (16, 16) and ds.directions.shape[1] == 16


@pytest.mark.parametrize("argv,match", [
    (["--k", 0], "--k must be >= 1"), (["--method", "ica"], "invalid choice"),
    (["--k", 99], "exceeds min"), (["--sae.k", 0], "sae k")])
def test_bad_flags(store, tmp_path, argv, match, capsys):
    with pytest.raises((UserError, SystemExit)) as e:
        cli([store, "--out", tmp_path / "x", *argv])
    if e.type is SystemExit:  # argparse's own choice check
        assert match in capsys.readouterr().err
    else:
        assert match in str(e.value)


def test_not_a_store_is_user_error(tmp_path):
    with pytest.raises(UserError, match="not a jaxsteer run folder"):
        cli([tmp_path])
