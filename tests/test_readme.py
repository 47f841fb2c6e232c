"""The README's offline quick start runs as written (with smaller counts), so it cannot drift."""

import re
import shlex
import subprocess
from pathlib import Path

from jaxsteer import cli

README = Path(__file__).resolve().parents[1] / "README.md"
# Counts shrunk for a 2-core CI machine; every other flag is the README's own.
SMALLER = {"--n": "8", "--pairs": "8", "--seeds": "0", "--k": "4", "--steps": "2"}
SURVEY_SMALLER = {"--pool": "4"}  # survey's --pool is a count; collect's a folder
FAST_SURVEY = ["--complexity.n-boot-spectral", "0", "--complexity.n-boot", "4",
               "--complexity.pa-draws", "2", "--complexity.mle-k", "2",
               "--complexity.vaease.enabled", "false"]


def quick_start_commands() -> list[str]:
    """The shell lines of the first bash block of the offline quick start, joined over \\."""
    text = README.read_text()
    section = text[text.index("## Offline quick start"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def smaller(argv: list[str]) -> list[str]:
    out = list(argv)
    table = SMALLER | (SURVEY_SMALLER if out[0] == "survey" else {})
    for i, arg in enumerate(out[:-1]):
        if arg in table:
            out[i + 1] = table[arg]
    return out + (FAST_SURVEY if out[0] == "survey" else [])


def test_the_offline_quick_start_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    commands = quick_start_commands()
    assert sum(c.startswith("jaxsteer ") for c in commands) >= 9
    for line in commands:
        if line.startswith("jaxsteer "):
            argv = smaller(shlex.split(line, comments=True)[1:])
            assert cli.main(argv) == 0, line
        else:
            subprocess.run(["bash", "-c", line], check=True, cwd=tmp_path)
    assert (tmp_path / "runs" / "red" / "report.html").exists()
    assert (tmp_path / "runs" / "survey" / "report.html").exists()
    assert (tmp_path / "runs" / "red" / "grads" / "directions_pca.safetensors").exists()
