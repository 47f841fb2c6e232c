"""jaxsteer installs into a current PyTorch / diffusers / transformers environment.

pip resolves ``jaxsteer`` together with ``torch``, the newest ``diffusers`` and
``transformers>=5`` (``--dry-run``: nothing is installed; where the index serves PEP 658
metadata, as PyPI does, only metadata is fetched), and the result is compared with the same set
resolved without jaxsteer: jaxsteer's requirements must not pull any of those packages back to an
older release. Skipped where PyPI cannot be reached.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
OTHERS = ["diffusers", "transformers>=5", "torch"]


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=3).close()
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _pypi_reachable(), reason="PyPI is not reachable")


def _resolve(tmp_path: Path, name: str, requirements: list[str]) -> dict[str, Version]:
    """{package: version} pip would install into an empty environment."""
    report = tmp_path / f"{name}.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
           "--report", str(report), *requirements]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PIP_NO_INPUT": "1",
                               "PIP_DISABLE_PIP_VERSION_CHECK": "1"}, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}"
    return {canonicalize_name(item["metadata"]["name"]): Version(item["metadata"]["version"])
            for item in json.loads(report.read_text())["install"]}


def test_resolves_with_torch_newest_diffusers_and_transformers_5(tmp_path):
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as pool:  # two pip processes at once: half the wall time
        alone = pool.submit(_resolve, tmp_path, "alone", OTHERS)
        together = pool.submit(_resolve, tmp_path, "together", [str(ROOT), *OTHERS])
        alone, together = alone.result(), together.result()
    assert "jaxsteer" in together
    assert together["transformers"].major >= 5
    assert together["diffusers"] >= Version("0.40")  # the releases without Flax classes
    assert together["huggingface-hub"] >= Version("1.0")
    downgraded = {name: f"{alone[name]} -> {together[name]}" for name in alone
                  if name in together and together[name] < alone[name]}
    assert not downgraded, f"jaxsteer's requirements downgrade {downgraded}"
