"""The emulator as a separate process (`nwsyslog emulator`), for tests, benchmarks and demos that
need to stop, kill or restart it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from types import TracebackType

from ..errors import StartupError


class EmulatorProcess:
    """`python -m ingestor.cli emulator --listen HOST:0 ARGS...`, with its announced URL.

    Example:
        >>> with EmulatorProcess("--max-body-bytes", "65536") as emu:  # doctest: +SKIP
        ...     print(emu.url)
    """

    def __init__(self, *args: str, listen: str = "127.0.0.1:0") -> None:
        self.args = ("--listen", listen, *args)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ingestor.cli", "emulator", *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        match = re.search(r"listening on (\S+)", first)
        if match is None:
            self.proc.kill()
            _, err = self.proc.communicate()
            raise StartupError(f"the emulator did not start: {first.strip()} {err.strip()}")
        self.url: str = match.group(1)

    def readline(self) -> str:
        """The next line the emulator printed (its banner, thumbprints)."""
        assert self.proc.stdout is not None
        return self.proc.stdout.readline()

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int:
        """Send `sig` (SIGINT, as Ctrl-C would), wait, close the pipes; return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
        return self.proc.returncode

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
