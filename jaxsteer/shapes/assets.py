"""The bundled shapes model in ``jaxsteer/assets/shapes``, and its recorded sha256 checksums.

The weights are trained once on a GPU (`jaxsteer train-shapes`) and shipped inside the package;
the checksums in ``checksums.py`` (next to this file; a module rather than a JSON file so that it
ships with the code without any package-data rule) tie the shipped files to that run, so a
corrupted or half-copied installation is reported instead of producing silently wrong images.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from jaxsteer.errors import UserError
from jaxsteer.records import atomic_write_text

ASSET_DIR = Path(__file__).resolve().parent.parent / "assets" / "shapes"
CHECKSUM_FILE = Path(__file__).resolve().with_name("checksums.py")


def checksums(folder: str | Path = ASSET_DIR) -> dict[str, str]:
    """{relative path: sha256 hex} of every file under ``folder``, sorted by path."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def write_checksums(folder: str | Path = ASSET_DIR, path: str | Path = CHECKSUM_FILE) -> dict:
    """Records the checksums of a freshly trained folder (run once, after training)."""
    sums = checksums(folder)
    lines = "".join(f'    "{name}":\n        "{digest}",\n' for name, digest in sums.items())
    atomic_write_text(path, '"""sha256 of each file of the bundled shapes model (written by '
                      'assets.write_checksums)."""\n\nSHA256 = {\n' + lines + "}\n")
    return sums


def verify(folder: str | Path = ASSET_DIR, expected: dict[str, str] | None = None) -> Path:
    """Checks ``folder`` against the recorded checksums; returns the folder or raises UserError."""
    from jaxsteer.shapes.checksums import SHA256
    folder = Path(folder)
    expected = SHA256 if expected is None else expected
    if not (folder / "model_index.json").exists():
        raise UserError(f"the bundled shapes model is missing from this installation ({folder})")
    got = checksums(folder)
    bad = sorted(name for name, digest in expected.items() if got.get(name) != digest)
    if bad:
        raise UserError(f"the bundled shapes model in {folder} is damaged (checksum mismatch: "
                        f"{', '.join(bad)}); reinstall jaxsteer")
    return folder
