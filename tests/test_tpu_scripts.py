"""The TPU helper scripts: syntax, shellcheck, size, and the gcloud calls they make.

The scripts run here against a stub ``gcloud`` on PATH that records its arguments, so the
commands and the quoting of what runs on the workers are checked without a cloud account.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "tpu_scripts"
NAMES = ["create.sh", "setup.sh", "launch.sh", "fetch_results.sh", "delete.sh"]
SCRIPTS = [SCRIPTS_DIR / n for n in NAMES]

# Each call appends its argv, one argument per line, then a line "--END--".
STUB = """#!/usr/bin/env bash
for a in "$@"; do printf '%s\\n' "$a"; done >> "$GCLOUD_LOG"
echo --END-- >> "$GCLOUD_LOG"
case "$*" in
  *"queued-resources describe"*) echo ACTIVE ;;
  *"tpu-vm describe"*) echo "10.0.0.1;10.0.0.2" ;;
esac
"""


@pytest.mark.parametrize("path", SCRIPTS, ids=NAMES)
def test_script_is_small_strict_and_parses(path):
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert len(text.splitlines()) <= 100
    assert path.stat().st_mode & stat.S_IXUSR, f"{path.name} is not executable"
    for secret in ("PRIVATE KEY", "access-token", "client_secret", "AIza"):
        assert secret not in text
    subprocess.run(["bash", "-n", str(path)], check=True)


def test_shellcheck_clean():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install -y shellcheck)")
    out = subprocess.run(["shellcheck", *map(str, SCRIPTS)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def run_script(name: str, tmp_path: Path, **env: str) -> list[list[str]]:
    """Runs a script with the stub gcloud; returns the gcloud calls (argv lists)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "gcloud"
    stub.write_text(STUB)
    stub.chmod(0o755)
    log = tmp_path / "gcloud.log"
    log.write_text("")
    full_env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "GCLOUD_LOG": str(log),
                "PROJECT": "test-project", "ZONE": "us-west4-a", "POLL_S": "0", **env}
    out = subprocess.run(["bash", str(SCRIPTS_DIR / name)], env=full_env, cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    calls, cur = [], []
    for line in log.read_text().splitlines():
        if line == "--END--":
            calls.append(cur)
            cur = []
        else:
            cur.append(line)
    return calls


def remote_script(call: list[str]) -> str:
    """The script a worker's shell runs for ``--command 'bash -c QUOTED'``, unquoted once."""
    words = shlex.split(call[call.index("--command") + 1])
    assert words[:2] == ["bash", "-c"] and len(words) == 3
    subprocess.run(["bash", "-n", "-c", words[2]], check=True)
    return words[2]


def test_create_direct_and_queued(tmp_path):
    (call,) = run_script("create.sh", tmp_path, ACCELERATOR_TYPE="v5p-64")
    assert call[:5] == ["compute", "tpus", "tpu-vm", "create", "jaxsteer"]
    assert "v2-alpha-tpuv5" in call and "v5p-64" in call
    create, describe = run_script("create.sh", tmp_path, QUEUED="1", SPOT="1")
    assert create[:4] == ["compute", "tpus", "queued-resources", "create"]
    assert "--spot" in create and "--node-id" in create
    assert describe[3] == "describe"


def test_setup_installs_on_all_workers(tmp_path):
    (call,) = run_script("setup.sh", tmp_path, REPO_URL="https://example.com/jaxsteer.git")
    assert "--worker=all" in call
    script = remote_script(call)
    assert "git clone --depth 1 --branch main https://example.com/jaxsteer.git" in script
    assert ".venv/bin/pip install -q -e '.[tpu]'" in script


def test_launch_runs_the_survey_everywhere(tmp_path):
    (call,) = run_script("launch.sh", tmp_path, PROMPTS="my prompts.txt", PAIRS="64",
                         CONFIG="configs/x.yaml", EXTRA_ARGS="--seed 3")
    assert "--worker=all" in call
    script = remote_script(call)
    assert ("nohup .venv/bin/jaxsteer survey my\\ prompts.txt --model shapes --pairs 64 "
            "--out results/survey --config configs/x.yaml --seed 3") in script
    assert "survey-$(hostname).log" in script


def test_fetch_copies_each_worker(tmp_path):
    calls = run_script("fetch_results.sh", tmp_path, MERGE_CMD="", LOCAL_DIR="out")
    assert calls[0][3] == "describe"
    scp = [c for c in calls if "scp" in c]
    assert [c[-5] for c in scp] == ["--worker=0", "--worker=1"]
    assert (tmp_path / "out" / "worker-1").is_dir()


def test_delete(tmp_path):
    (call,) = run_script("delete.sh", tmp_path)
    assert call[:5] == ["compute", "tpus", "tpu-vm", "delete", "jaxsteer"] and "--quiet" in call
    (call,) = run_script("delete.sh", tmp_path, QUEUED="1")
    assert call[:4] == ["compute", "tpus", "queued-resources", "delete"] and "--force" in call
