"""jaxsteer installs into a current PyTorch / diffusers / transformers environment.

pip resolves ``jaxsteer`` together with ``torch``, the newest ``diffusers`` and
``transformers>=5`` (``--dry-run``: nothing is installed; where the index serves PEP 658
metadata, as PyPI does, only metadata is fetched), and the result is compared with the same set
resolved without jaxsteer: jaxsteer's requirements must not pull any of those packages back to an
older release. Skipped where PyPI cannot be reached. The resolutions are network-bound, so a
whole-suite run starts them as it begins (tests/pip_resolution.py).
"""

import os
import socket
from pathlib import Path

import pytest
from packaging.version import Version

from tests import pip_resolution


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=3).close()
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _pypi_reachable(), reason="PyPI is not reachable")


def test_resolves_with_torch_newest_diffusers_and_transformers_5(tmp_path):
    # Started by conftest as the session began (tests/pip_resolution.py), or here.
    early = os.environ.get(pip_resolution.EARLY_ENV)
    folder = Path(early) if early else tmp_path
    if not early:
        for p in [pip_resolution.start(folder, name) for name in pip_resolution.RESOLUTIONS]:
            p.wait()
    alone, together = (pip_resolution.result(folder, name) for name in ("alone", "together"))
    assert "jaxsteer" in together
    assert together["transformers"].major >= 5
    assert together["diffusers"] >= Version("0.40")  # the releases without Flax classes
    assert together["huggingface-hub"] >= Version("1.0")
    downgraded = {name: f"{alone[name]} -> {together[name]}" for name in alone
                  if name in together and together[name] < alone[name]}
    assert not downgraded, f"jaxsteer's requirements downgrade {downgraded}"
