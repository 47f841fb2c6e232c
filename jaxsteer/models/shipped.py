"""Model folders shipped inside the package (``jaxsteer/assets``), tied to the runs that made
them by recorded sha256 checksums.

Each shipped folder has its checksums in a Python module next to the code that owns it
(``shapes/checksums.py``, ``shapes/student_checksums.py``, ``scenes/checksums.py`` and, once
its student is installed, ``scenes/student_checksums.py``: modules
rather than JSON files so that they ship with the code without any package-data rule), written
by `write_checksums` when the folder is installed, never by hand. `verify` checks a folder
against them on load, so a corrupted or half-copied installation is one clear error instead of
silently wrong images.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from jaxsteer.errors import UserError
from jaxsteer.records import atomic_write_text, publish_folder

# A distilled student's subfolders of its own; every other subfolder of its folder (text
# encoder, tokenizer, a latent model's VAE) is its teacher's, and ships once, with the teacher.
STUDENT_OWN = ("unet", "scheduler")


def checksums(folder: str | Path) -> dict[str, str]:
    """{relative path: sha256 hex} of every file under ``folder``, sorted by path."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def write_checksums(folder: str | Path, path: str | Path, what: str) -> dict[str, str]:
    """Records the checksums of ``folder`` as the module ``path`` (``SHA256 = {...}``)."""
    sums = checksums(folder)
    lines = "".join(f'    "{name}":\n        "{digest}",\n' for name, digest in sums.items())
    atomic_write_text(path, f'"""sha256 of each file of {what} (written by '
                      'assets.write_checksums)."""\n\nSHA256 = {\n' + lines + "}\n")
    return sums


def verify(folder: str | Path, expected: dict[str, str], what: str) -> Path:
    """Checks ``folder`` against ``expected``; returns the folder or raises UserError."""
    folder = Path(folder)
    if not (folder / "model_index.json").exists():
        raise UserError(f"{what} is missing from this installation ({folder})")
    got = checksums(folder)
    bad = sorted(name for name, digest in expected.items() if got.get(name) != digest)
    if bad:
        raise UserError(f"{what} in {folder} is damaged (checksum mismatch: "
                        f"{', '.join(bad)}); reinstall jaxsteer")
    return folder


def install(folder: str | Path, dest: str | Path, checksum_file: str | Path, what: str,
            ignore: Callable[[str, list[str]], list[str]] | None = None) -> dict[str, str]:
    """Copies ``folder`` to ``dest`` (atomically: a reader never finds it half-copied; files
    ``ignore`` names, as for shutil.copytree, are left out) and records its checksums."""
    folder, dest = Path(folder), Path(dest)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(folder, tmp, ignore=ignore)
    publish_folder(tmp, dest)
    return write_checksums(dest, checksum_file, what)


def install_student(folder: str | Path, dest: str | Path, teacher: str | Path,
                    checksum_file: str | Path, what: str) -> dict[str, str]:
    """Installs a student exported by `jaxsteer distill-shapes` as `install` does, without the
    subfolders it shares with ``teacher`` (refused if they differ: the student would not be the
    teacher's). Returns its checksums."""
    folder, teacher = Path(folder), Path(teacher)
    if not (folder / "unet").is_dir() or not (folder / "model_index.json").exists():
        raise UserError(f"{folder} is not a student folder from `jaxsteer distill-shapes`")
    shared = {p.name for p in folder.iterdir() if p.is_dir()} - set(STUDENT_OWN)
    mine, theirs = checksums(folder), checksums(teacher)
    differ = sorted(n for n in mine if n.split("/")[0] in shared and theirs.get(n) != mine[n])
    if differ:
        raise UserError(f"{folder} does not share its teacher's files ({', '.join(differ)}): "
                        f"it was not distilled from {teacher}")
    return install(folder, dest, checksum_file, what,
                   lambda d, names: [n for n in names if Path(d) == folder and n in shared])


def install_command(argv: list[str] | None, prog: str, verb: str,
                    install_fn: Callable[[str], dict[str, str]], dest: Path,
                    checksum_file: Path) -> None:
    """``python -m PROG VERB FOLDER``: ``install_fn(FOLDER)``, then one line of what it wrote;
    bad input is one line and exit 1, not a traceback."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != verb:
        raise SystemExit(f"usage: python -m {prog} {verb} FOLDER")
    try:
        sums = install_fn(argv[1])
    except UserError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"installed {len(sums)} files into {dest}; checksums in {checksum_file}")
