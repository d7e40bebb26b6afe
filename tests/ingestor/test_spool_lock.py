"""One service per spool: the lock file's exclusive flock, its wait, and its holder's name."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ingestor.errors import StartupError
from ingestor.spool_lock import SpoolLock, lock_path


def test_a_second_holder_is_refused_with_the_first_ones_pid_and_gets_it_once_released(tmp_path: Path) -> None:
    spool = tmp_path / "spool.db"
    first = SpoolLock(spool)
    first.acquire(0)
    assert first.fd is not None and lock_path(spool).read_text().startswith(f"{os.getpid()} a service")
    with pytest.raises(StartupError, match=rf"another nwsyslog process \(pid {os.getpid()}, a service\)"):
        SpoolLock(spool).acquire(0)
    first.release()
    second = SpoolLock(spool)
    second.acquire(0, purpose="nwsyslog import --direct")
    assert lock_path(spool).read_text().strip() == f"{os.getpid()} nwsyslog import --direct"
    second.release()


def test_a_start_waits_for_the_holder_to_end(tmp_path: Path) -> None:
    spool = tmp_path / "spool.db"
    first = SpoolLock(spool)
    first.acquire(0)
    threading.Timer(0.6, first.release).start()
    started = time.monotonic()
    second = SpoolLock(spool)
    second.acquire(10)
    assert 0.5 < time.monotonic() - started < 5
    second.release()


def test_a_copy_of_the_locked_file_in_another_process_keeps_the_lock_after_the_first_closes(tmp_path: Path) -> None:
    """What the delivery process does with the file its service sends it: the lock holds
    until every process holding the file has closed it or ended."""
    spool = tmp_path / "spool.db"
    first = SpoolLock(spool)
    first.acquire(0)
    assert first.fd is not None
    fd = first.fd
    os.set_inheritable(fd, True)
    # The child keeps its copy of the locked file until its standard input closes.
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE, pass_fds=[fd]
    )
    first.release()
    with pytest.raises(StartupError, match="another nwsyslog process"):
        SpoolLock(spool).acquire(0)
    assert child.stdin is not None
    child.stdin.close()
    child.wait(10)
    after = SpoolLock(spool)
    after.acquire(0)
    after.release()
