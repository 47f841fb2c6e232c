"""sha256 of each file of the bundled shapes-student model (written by assets.write_checksums).

Empty until a student is distilled (scripts/gpu_distill.sh) and installed
(``python -m jaxsteer.shapes.assets install-student FOLDER``)."""

SHA256: dict[str, str] = {}
