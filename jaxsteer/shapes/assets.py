"""The bundled shapes models in ``jaxsteer/assets``, and their recorded sha256 checksums.

The teacher (``assets/shapes``) is trained once on a GPU (`jaxsteer train-shapes`), the
few-step student (``assets/shapes-student``) distilled from it (`jaxsteer distill-shapes`,
scripts/gpu_distill.sh); both ship inside the package. The checksums (``checksums.py`` and
``student_checksums.py`` next to this file, kept by `jaxsteer.models.shipped`) tie the shipped
files to those runs, so a corrupted or half-copied installation is reported instead of
producing silently wrong images. The student
ships only what differs from its teacher (UNet, scheduler config, records): its text encoder and
tokenizer are the teacher's, checked identical when it is installed.
"""

from __future__ import annotations

from pathlib import Path

from jaxsteer.models import shipped
from jaxsteer.shapes.checksums import SHA256

ASSET_DIR = Path(__file__).resolve().parent.parent / "assets" / "shapes"
STUDENT_DIR = ASSET_DIR.with_name("shapes-student")
CHECKSUM_FILE = Path(__file__).resolve().with_name("checksums.py")
STUDENT_CHECKSUM_FILE = CHECKSUM_FILE.with_name("student_checksums.py")


def write_checksums(folder: str | Path = ASSET_DIR, path: str | Path = CHECKSUM_FILE,
                    what: str = "the bundled shapes model") -> dict:
    """Records the checksums of a freshly trained folder (run once, after training)."""
    return shipped.write_checksums(folder, path, what)


def verify(folder: str | Path = ASSET_DIR, expected: dict[str, str] | None = None,
           what: str = "the bundled shapes model") -> Path:
    """Checks ``folder`` against the recorded checksums; returns the folder or raises UserError."""
    return shipped.verify(folder, SHA256 if expected is None else expected, what)


def install_student(folder: str | Path, dest: str | Path = STUDENT_DIR,
                    teacher: str | Path = ASSET_DIR,
                    checksum_file: str | Path = STUDENT_CHECKSUM_FILE) -> dict:
    """Copies a student exported by `jaxsteer distill-shapes` into the package as the bundled
    ``shapes-student``, without the files it shares with ``teacher`` (refused if they differ:
    the student would not be the teacher's), and records its checksums. Returns them."""
    return shipped.install_student(folder, dest, teacher, checksum_file,
                                   "the bundled shapes-student model")


def main(argv: list[str] | None = None) -> None:
    """``python -m jaxsteer.shapes.assets install-student FOLDER``."""
    shipped.install_command(argv, "jaxsteer.shapes.assets", "install-student",
                            install_student, STUDENT_DIR, STUDENT_CHECKSUM_FILE)


if __name__ == "__main__":
    main()
