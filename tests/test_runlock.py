"""One writer per folder: a second holder is refused by name; a dead holder's lock is gone."""

import os
import socket
import subprocess
import sys

import pytest

from jaxsteer import runlock
from jaxsteer.errors import UserError


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    with runlock.hold(tmp_path / "run"), pytest.raises(UserError) as e, \
            runlock.hold(tmp_path / "run"):
        pass
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in str(e.value)
    with runlock.hold(tmp_path / "run"):  # released at the end of the block
        pass


def test_locks_of_other_names_do_not_conflict(tmp_path):
    with runlock.hold(tmp_path, ".jaxsteer-survey-000.lock"), \
            runlock.hold(tmp_path, ".jaxsteer-survey-001.lock"):
        pass
    assert all(runlock.is_lock_file(p) for p in tmp_path.iterdir())


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    code = ("import sys, time; from jaxsteer import runlock\n"
            "with runlock.hold(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=f"pid {child.pid} "), runlock.hold(tmp_path):
            pass
    finally:
        child.kill()
        child.wait()
    with runlock.hold(tmp_path):
        pass
