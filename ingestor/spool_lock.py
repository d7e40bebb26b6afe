"""One service per spool: an exclusive `flock` on `spool.db.lock`, held by the listening process
and, through the same open file, by its delivery process.

Two services on one spool would each run a delivery process, and send every record twice. The
same happens, briefly, when a service is killed with SIGKILL and started again at once: its
delivery process outlives it for up to its shutdown timeout (it sees the listening process gone
and flushes), still writing the spool. A start therefore takes the lock first, waits a while
for such a leftover to end, and refuses to start beside a live service. The delivery process
receives the locked file over its pipe (SCM_RIGHTS), so the lock holds until both processes of
a service have ended, whichever goes last; the kernel releases it when a process dies, so a
crash never leaves a stale lock behind. `nwsyslog import --direct` takes it too.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path

from .errors import StartupError

log = logging.getLogger("nwsyslog.spool")

POLL = 0.2  # seconds between tries while another process holds the lock


def lock_path(spool_path: str | Path) -> Path:
    """The lock file beside a spool."""
    return Path(f"{spool_path}.lock")


class SpoolLock:
    """The spool's lock; `fd` is the locked file once `acquire` returned (pass it on to the
    delivery process). `release()` closes it; a process that ends releases it too."""

    def __init__(self, spool_path: str | Path) -> None:
        self.spool_path = Path(spool_path)
        self.path = lock_path(spool_path)
        self.fd: int | None = None

    def acquire(self, wait: float, *, purpose: str = "a service") -> None:
        """Take the lock, waiting up to `wait` seconds while another process holds it (a
        service's delivery process that outlives a killed service ends within its shutdown
        timeout). Raises StartupError naming the holder when it is still held then."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StartupError(f"cannot open the spool's lock file {self.path}: {exc}") from None
        deadline = time.monotonic() + wait
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fd)
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise StartupError(
                        f"another nwsyslog process ({holder}) is using the spool {self.spool_path}: "
                        "two services on one spool would send every record twice; stop it, or give this one "
                        "its own spool.path"
                    ) from None
                if not told:
                    log.warning(
                        "the spool %s is in use by another nwsyslog process (%s); waiting up to %.0f s for it "
                        "to end (a killed service's delivery process finishes its flush first)",
                        self.spool_path,
                        holder,
                        wait,
                    )
                    told = True
                time.sleep(POLL)
            except OSError as exc:
                os.close(fd)
                raise StartupError(f"cannot lock the spool's lock file {self.path}: {exc}") from None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {purpose}\n".encode(), 0)
        if told:
            log.info("the spool %s is free now", self.spool_path)
        self.fd = fd

    def release(self) -> None:
        """Close the lock file (the lock is released once the delivery process's copy is closed too)."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


def _holder(fd: int) -> str:
    """Who holds the lock, as the lock file says: "pid N, a service" (or "gone" when that
    process has ended: a delivery process it started still runs)."""
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    pid_text, _, purpose = text.partition(" ")
    if not pid_text.isdigit():
        return "unknown pid"
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"pid {pid}, {purpose or 'a service'}, has ended; its delivery process is still running"
    except PermissionError:
        pass
    return f"pid {pid}, {purpose or 'a service'}"
