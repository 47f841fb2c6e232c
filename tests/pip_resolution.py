"""The two pip resolutions of tests/test_dependencies.py, startable ahead of the test.

They are network-bound (about 50 s on CI, little CPU), so `conftest.py` starts them in the
background when a session that will run that test begins, and the test reads their reports:
the worker that runs it no longer sits idle for them. Each resolution writes ``NAME.json`` (pip's
report), ``NAME.log`` and, last, ``NAME.rc`` (its exit code) into one folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
OTHERS = ["diffusers", "transformers>=5", "torch"]
# name -> requirements: the set alone, and the same set with jaxsteer
RESOLUTIONS = {"alone": OTHERS, "together": [str(ROOT), *OTHERS]}
EARLY_ENV = "JAXSTEER_TEST_PIP_REPORTS"   # the folder of resolutions started by conftest
TIMEOUT_S = 900


def start(folder: Path, name: str) -> subprocess.Popen:
    """Starts one resolution in the background, in its own process group (`stop`); the rc file
    appears when it ends."""
    folder.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
           "--report", str(folder / f"{name}.json"), *RESOLUTIONS[name]]
    # the rc file is renamed into place, so a reader never sees it half-written; `result`
    # bounds the wait and `stop` ends what still runs (no `timeout` binary: macOS lacks one)
    script = '"$@" > "$LOG" 2>&1; echo $? > "$RC.tmp"; mv "$RC.tmp" "$RC"'
    env = {**os.environ, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "LOG": str(folder / f"{name}.log"), "RC": str(folder / f"{name}.rc")}
    return subprocess.Popen(["sh", "-c", script, "sh", *pip], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def result(folder: Path, name: str) -> dict[str, Version]:
    """{package: version} of a started resolution, once it has ended (waits up to TIMEOUT_S)."""
    rc_file = folder / f"{name}.rc"
    deadline = time.monotonic() + TIMEOUT_S + 30
    while not rc_file.exists():
        assert time.monotonic() < deadline, f"pip resolution {name!r} did not finish"
        time.sleep(0.5)
    rc = int(rc_file.read_text())
    log = (folder / f"{name}.log").read_text()
    assert rc == 0, f"pip resolution {name!r} ({RESOLUTIONS[name]}) exit {rc}:\n{log[-4000:]}"
    report = json.loads((folder / f"{name}.json").read_text())
    return {canonicalize_name(item["metadata"]["name"]): Version(item["metadata"]["version"])
            for item in report["install"]}


def stop(proc: subprocess.Popen) -> None:
    """Ends a started resolution and its pip (the whole process group) if it still runs."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    proc.wait()
