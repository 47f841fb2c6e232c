"""`jaxsteer.models.bundled`: the names, presets and folders of the models that need no download.
(Loading the shapes models and the student is tests/shapes/test_assets.py's.)"""

import json

import pytest

from jaxsteer.errors import UserError
from jaxsteer.models import bundled


def test_presets_probes_and_students_name_bundled_models():
    assert set(bundled.PRESETS) <= set(bundled.NAMES)
    assert set(bundled.PROBES) <= set(bundled.NAMES)
    for student, teacher in bundled.STUDENTS.items():
        assert student in bundled.NAMES and teacher in bundled.NAMES
    for name, preset in bundled.PRESETS.items():
        assert {"steps", "guidance", "scheduler"} <= set(preset), name
    # The collapsed generator: the shapes model's settings, fewer steps, shared noise.
    turbo, shapes = bundled.PRESETS["shapes-turbo"], bundled.PRESETS["shapes"]
    assert turbo["steps"] < shapes["steps"] and 0 < turbo["shared_noise"] < 1


def test_the_cache_folder_follows_jaxsteer_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXSTEER_CACHE", str(tmp_path / "c"))
    assert bundled.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("JAXSTEER_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert bundled.cache_dir() == tmp_path / "home" / ".cache" / "jaxsteer"


def test_a_tiny_model_is_built_once_into_the_cache_and_then_reused(monkeypatch, tmp_path):
    from jaxsteer.models import tiny
    monkeypatch.setenv("JAXSTEER_CACHE", str(tmp_path))
    built = []

    def fake_build(folder):
        built.append(folder)
        folder.mkdir(parents=True)
        (folder / "model_index.json").write_text("{}")

    monkeypatch.setattr(tiny, "build_tiny_sd", fake_build)
    path = bundled.folder("tiny")
    assert path == tmp_path / "tiny-sd" and (path / "model_index.json").exists()
    # Built under a temporary name and renamed: a killed build leaves no half folder at `path`.
    assert len(built) == 1 and built[0] != path and built[0].parent == tmp_path
    assert not built[0].exists()
    assert bundled.folder("tiny") == path and len(built) == 1  # the second call reuses it


def test_a_missing_shipped_model_is_a_user_error(monkeypatch, tmp_path):
    monkeypatch.setattr(bundled, "ASSETS", tmp_path)
    with pytest.raises(UserError, match="bundled model 'shapes' is not in this installation"):
        bundled.folder("shapes")


def test_a_students_sampler_is_the_one_its_training_recorded(monkeypatch, tmp_path):
    monkeypatch.setattr(bundled, "ASSETS", tmp_path)
    assert bundled._student_sampler("s") == {"steps": 4, "guidance": 0.0, "scheduler": "ddim"}
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "training.json").write_text(json.dumps({"sampler": {
        "steps": 2, "guidance": 1.5, "scheduler": "euler", "seed": 9}}))
    assert bundled._student_sampler("s") == {"steps": 2, "guidance": 1.5, "scheduler": "euler"}


def test_a_preset_runs_on_the_loaded_bundle_unless_it_is_the_models_student(monkeypatch):
    import jaxsteer.models as models
    loaded = []
    monkeypatch.setattr(models, "load", lambda name: loaded.append(name) or f"bundle of {name}")
    mine = object()
    assert bundled.preset_bundle("shapes-turbo", "shapes", mine) is mine
    assert bundled.preset_bundle("shapes-student", "tiny", mine) is mine  # not tiny's student
    assert loaded == []
    assert bundled.preset_bundle("shapes-student", "shapes", mine) == "bundle of shapes-student"
    assert loaded == ["shapes-student"]
