"""The bundled scenes model (``jaxsteer/assets/scenes``) and its recorded sha256 checksums.

Trained once on a GPU (`jaxsteer train-scenes`, scripts/gpu_train_scenes.sh) and installed with
``python3 -m jaxsteer.scenes.assets install FOLDER``, which copies the exported folder into the
package and writes ``checksums.py`` next to this file (`jaxsteer.models.shipped`); loading it
(`jaxsteer.models.load("scenes")`) checks the files against them. Its few-step student
(``assets/scenes-student``, `jaxsteer distill-shapes --teacher scenes`, scripts/gpu_distill.sh
with WORLD=scenes) is installed with ``install-student FOLDER``: only what differs from the
teacher (UNet, scheduler config, records; its text encoder, tokenizer and VAE are the
teacher's, checked identical), its checksums in ``student_checksums.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from jaxsteer.errors import UserError
from jaxsteer.models import shipped

ASSET_DIR = Path(__file__).resolve().parent.parent / "assets" / "scenes"
CHECKSUM_FILE = Path(__file__).resolve().with_name("checksums.py")
STUDENT_DIR = ASSET_DIR.with_name("scenes-student")
STUDENT_CHECKSUM_FILE = CHECKSUM_FILE.with_name("student_checksums.py")
WHAT = "the bundled scenes model"
MAX_WEIGHT_BYTES = 10_000_000   # the package's budget for this model's weight files


def verify(folder: str | Path = ASSET_DIR, expected: dict[str, str] | None = None) -> Path:
    """Checks ``folder`` against the recorded checksums; returns the folder or raises UserError
    (also when no scenes model has been installed: no checksums recorded)."""
    try:
        from jaxsteer.scenes.checksums import SHA256
    except ImportError:
        SHA256 = {}
    expected = SHA256 if expected is None else expected
    if not expected:
        raise UserError(f"{WHAT} is not in this installation: train one with `jaxsteer "
                        "train-scenes FOLDER` (scripts/gpu_train_scenes.sh), then `python3 -m "
                        "jaxsteer.scenes.assets install FOLDER`")
    return shipped.verify(folder, expected, WHAT)


def install(folder: str | Path, dest: str | Path = ASSET_DIR,
            checksum_file: str | Path = CHECKSUM_FILE) -> dict[str, str]:
    """Copies a folder exported by `jaxsteer train-scenes` into the package as the bundled
    ``scenes`` model and records its checksums. Returns them."""
    folder = Path(folder)
    record = folder / "training.json"
    if not all((folder / sub).is_dir() for sub in ("unet", "vae", "text_encoder", "tokenizer")) \
            or not (folder / "model_index.json").exists() or not record.exists():
        raise UserError(f"{folder} is not a model folder exported by `jaxsteer train-scenes`")
    saved = json.loads(record.read_text())
    progress, steps = saved.get("progress", {}), saved.get("config", {}).get("steps")
    if steps is not None and progress.get("unet_step") != steps:
        raise UserError(f"{folder} was exported at UNet step {progress.get('unet_step')} of "
                        f"{steps}: finish training first")
    weights = sum(p.stat().st_size for p in folder.rglob("*.msgpack"))
    if weights > MAX_WEIGHT_BYTES:
        raise UserError(f"{folder}'s weights are {weights / 1e6:.1f} MB, over the package's "
                        f"{MAX_WEIGHT_BYTES / 1e6:.0f} MB for the scenes model")
    return shipped.install(folder, dest, checksum_file, WHAT)


def install_student(folder: str | Path, dest: str | Path = STUDENT_DIR,
                    teacher: str | Path = ASSET_DIR,
                    checksum_file: str | Path = STUDENT_CHECKSUM_FILE) -> dict[str, str]:
    """Copies a student of ``teacher`` exported by `jaxsteer distill-shapes --teacher scenes`
    into the package as the bundled ``scenes-student`` (`shipped.install_student`: without the
    files it shares with its teacher, refused if they differ). Returns its checksums."""
    return shipped.install_student(folder, dest, teacher, checksum_file,
                                   "the bundled scenes-student model")


def main(argv: list[str] | None = None) -> None:
    """``python -m jaxsteer.scenes.assets install FOLDER`` (the model) or ``install-student
    FOLDER`` (its distilled student)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["install-student"]:
        shipped.install_command(argv, "jaxsteer.scenes.assets", "install-student",
                                install_student, STUDENT_DIR, STUDENT_CHECKSUM_FILE)
    else:
        shipped.install_command(argv, "jaxsteer.scenes.assets", "install", install,
                                ASSET_DIR, CHECKSUM_FILE)


if __name__ == "__main__":
    main()
