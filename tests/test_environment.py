"""`jaxsteer env`: what a user runs first on a new machine."""

import json

import jax

from jaxsteer import cli, environment


def test_env_reports_backend_devices_versions_defaults_and_caches(capsys, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    (cache / "xla").mkdir(parents=True)
    (cache / "xla" / "entry").write_bytes(b"x" * 2**20)
    monkeypatch.setenv("JAXSTEER_CACHE", str(cache))
    assert cli.main(["env"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["backend"] == "cpu" and result["local_devices"] == jax.local_device_count()
    assert len(result["devices"]) == jax.local_device_count()
    assert result["versions"]["jax"] == jax.__version__
    assert result["defaults"] == {"dtype": "float32", "attention": "diffusers",
                                  "remat_policy": "none"}
    assert result["caches"]["jaxsteer_cache"] == str(cache)
    assert result["caches"]["total_mib"] >= 1.0
    assert "backend   cpu" in captured.err and "--dtype float32" in captured.err


def test_quiet_env_prints_only_json(capsys):
    assert cli.main(["env", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["process_count"] == 1 and captured.err == ""


def test_folder_bytes_counts_nested_files(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_bytes(b"12345")
    (tmp_path / "g").write_bytes(b"123")
    assert environment.folder_bytes(tmp_path) == 8
    assert environment.folder_bytes(tmp_path / "missing") == 0
