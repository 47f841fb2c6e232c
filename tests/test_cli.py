"""End to end through the CLI: sample -> collect, kill-and-resume, and clear errors on bad input."""

import numpy as np
import pytest

from jaxsteer import cli, store
from jaxsteer.sample import read_pool

PROMPT = "a picture of a monster"


def common(folder):
    return ["--model", str(folder), "--steps", "2", "--batch", "4"]


@pytest.fixture(scope="module")
def pool(tiny_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("pool") / "pool"
    assert cli.main(["sample", *common(tiny_folder), "--prompt", PROMPT, "--n", "10",
                     "--out", str(out)]) == 0
    return out


class Killed(Exception):
    pass


def kill_after(monkeypatch, shards: int):
    """Makes the next run die (like a SIGKILL between writes) after ``shards`` shard writes."""
    real = store.ShardStore.write_shard
    count = {"n": 0}

    def write(self, i, arrays):
        if count["n"] == shards:
            (self.folder / "shards" / f".{i:06d}.safetensors.x.tmp").write_bytes(b"half")
            raise Killed
        count["n"] += 1
        real(self, i, arrays)

    monkeypatch.setattr(store.ShardStore, "write_shard", write)


def test_sample_kill_and_resume_gives_the_same_pool(tiny_folder, pool, tmp_path, monkeypatch):
    out = tmp_path / "again"
    args = ["sample", *common(tiny_folder), "--prompt", PROMPT, "--n", "10", "--out", str(out)]
    kill_after(monkeypatch, 1)
    with pytest.raises(Killed):
        cli.main(args)
    monkeypatch.undo()
    assert len(store.open_existing(out, "pool").done()) == 1
    assert cli.main(args) == 0
    resumed, _ = read_pool(out)
    whole, _ = read_pool(pool)
    assert resumed.shape == (10, 4, 8, 8)
    np.testing.assert_array_equal(resumed, whole)
    assert not list((out / "shards").glob(".*.tmp"))


def test_collect_kill_and_resume_has_no_duplicates_or_gaps(tiny_folder, pool, tmp_path,
                                                           monkeypatch, capsys):
    out = tmp_path / "grads"
    args = ["collect", *common(tiny_folder), "--prompt", PROMPT, "--token", "monster",
            "--pool", str(pool), "--pairs", "10", "--out", str(out)]
    kill_after(monkeypatch, 2)
    with pytest.raises(Killed):
        cli.main(args)
    monkeypatch.undo()
    assert cli.main(args) == 0
    grads, manifest = store.read_gradients(out)
    assert grads.shape == (10, 7, 32)
    shards = [store.records.load_arrays(p) for p in sorted((out / "shards").glob("*.safetensors"))]
    index = np.concatenate([s["index"] for s in shards])
    np.testing.assert_array_equal(index, np.arange(10))
    from jaxsteer.collect import draw_pairs
    np.testing.assert_array_equal(manifest["pairs"], draw_pairs(0, 10, 10))
    assert manifest["token_rows"] == list(range(12, 19)) and manifest["embed_dim"] == 32
    # A fresh, uninterrupted run gives the same rows.
    fresh = tmp_path / "fresh"
    assert cli.main(args[:-1] + [str(fresh)]) == 0
    np.testing.assert_array_equal(store.read_gradients(fresh)[0], grads)


@pytest.mark.parametrize("change, message", [
    (["--prompt", ""], "prompt is empty"),
    (["--token", "dragon"], "not a word of the prompt"),
    (["--prompt", "monster " * 20, "--token", "monster"], "long"),
    (["--model", "nobody/no-such-model"], "could not get model"),
    (["--pairs", "0"], "--pairs must be positive"),
    (["--steps", "x"], "cannot read 'x' as int"),
])
def test_bad_input_is_one_clear_line_and_leaves_no_files(tiny_folder, tmp_path, capsys, change,
                                                         message):
    out = tmp_path / "out"
    args = ["collect", *common(tiny_folder), "--prompt", PROMPT, "--token", "monster",
            "--pool", "none", "--pairs", "4", "--out", str(out)]
    for i in range(0, len(change), 2):
        args[args.index(change[i]) + 1] = change[i + 1]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and err[-1].startswith("jaxsteer collect: error:")
    assert "Traceback" not in "\n".join(err)
    assert not out.exists()


def test_out_folder_of_another_run_is_refused(tiny_folder, pool, tmp_path, capsys):
    args = ["collect", *common(tiny_folder), "--prompt", PROMPT, "--token", "monster",
            "--pool", str(pool), "--pairs", "4", "--out", str(pool)]
    assert cli.main(args) == 2
    assert "holds a 'pool' store" in capsys.readouterr().err
    other = tmp_path / "g"
    store.write_test_store(other, np.zeros((4, 32)), {"prompt": "another prompt"})
    before = sorted(p.name for p in other.rglob("*"))
    assert cli.main(args[:-1] + [str(other)]) == 2
    assert "holds a different run" in capsys.readouterr().err
    assert sorted(p.name for p in other.rglob("*")) == before


def test_help_lists_commands(capsys):
    assert cli.main(["--help"]) == 0
    assert "collect" in capsys.readouterr().out
    assert cli.main(["nonsense"]) == 2


def test_device_out_of_memory_is_one_clear_line(monkeypatch, capsys):
    """XLA's RESOURCE_EXHAUSTED becomes advice (batch, remat) and exit 2; other errors stay bugs."""
    from jaxsteer.collect import CollectRun

    def oom(cfg):
        raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 76.51GiB."
                           "\n(buffer assignment dump)")

    def bug(cfg):
        raise RuntimeError("a bug")

    monkeypatch.setitem(cli.COMMANDS, "collect", ("collect", lambda: (CollectRun, oom)))
    assert cli.main(["collect", "--batch", "64"]) == 2
    err = capsys.readouterr().err
    assert "ran out of memory" in err and "76.51GiB" in err and "--remat-policy matmuls" in err
    assert "buffer assignment dump" not in err and len(err.strip().splitlines()) == 1
    monkeypatch.setitem(cli.COMMANDS, "collect", ("collect", lambda: (CollectRun, bug)))
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["collect"])


def test_a_pool_made_with_another_jax_is_not_resumed(tiny_folder, pool, tmp_path, capsys):
    """The same seed draws other numbers under another jax: resuming would mix two draws."""
    import json
    import shutil
    other = tmp_path / "old"
    shutil.copytree(pool, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["identity"]["jax"] = "0.4.30"
    (other / "manifest.json").write_text(json.dumps(manifest))
    args = ["sample", *common(tiny_folder), "--prompt", PROMPT, "--n", "10", "--out", str(other)]
    assert cli.main(args) == 2
    assert "jax: '0.4.30' there" in capsys.readouterr().err
