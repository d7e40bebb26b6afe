"""The real senders the interoperability suite runs, found or installed from Debian's packages.

- rsyslog conflicts with syslog-ng-core as a package, so it is never installed: its packages
  (and the few libraries the machine lacks) are fetched with `apt-get download` and unpacked
  with `dpkg-deb -x` into a cache folder, and rsyslogd runs from there with its module folder
  and library path set. The machine's packages stay as they are.
- syslog-ng comes from Debian's syslog-ng-core, installed with apt-get when missing (as root,
  with a policy-rc.d that stops the package from starting the system service).
- util-linux's logger is on every Debian system.

Each program runs with its own configuration, pid file and work folder in a test's temporary
folder, in the foreground, never as a service. When a program cannot be had, `ProgramMissing`
says which and how to get it: the tests fail with that message, they are not skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nwsyslog-tests"
RSYSLOG_PACKAGES = ["rsyslog", "rsyslog-gnutls", "rsyslog-openssl"]
# rsyslogd's libraries that a machine without rsyslog usually lacks (the rest are everywhere).
RSYSLOG_LIBRARIES = ["libestr0", "libfastjson4", "liblognorm5"]


class ProgramMissing(AssertionError):
    """A sender the suite needs is not on this machine and could not be installed."""


def _apt_env() -> dict[str, str]:
    return {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}


def _run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=_apt_env(), capture_output=True, text=True, timeout=600)


def _libdir() -> str:
    """Debian's multiarch library folder (usr/lib/x86_64-linux-gnu, usr/lib/aarch64-linux-gnu)."""
    return f"usr/lib/{os.uname().machine}-linux-gnu"


class Rsyslog:
    """rsyslogd unpacked from Debian's packages into CACHE/rsyslog."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.binary = root / "usr" / "sbin" / "rsyslogd"
        self.libdir = root / _libdir()
        self.modules = self.libdir / "rsyslog"

    def command(self, config: Path, pid_file: Path) -> list[str]:
        return [str(self.binary), "-n", "-f", str(config), "-i", str(pid_file), "-M", str(self.modules)]

    def env(self) -> dict[str, str]:
        return {**os.environ, "LD_LIBRARY_PATH": str(self.libdir), "TZ": "UTC"}

    def version(self) -> str:
        out = subprocess.run([str(self.binary), "-v"], env=self.env(), capture_output=True, text=True).stdout
        return out.split("\n", 1)[0].strip()


def rsyslog() -> Rsyslog:
    """rsyslogd with its gtls and ossl drivers, unpacked into the cache on first use."""
    found = Rsyslog(CACHE / "rsyslog")
    wanted = [found.binary, found.modules / "lmnsd_gtls.so", found.modules / "lmnsd_ossl.so"]
    if all(p.exists() for p in wanted):
        return found
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise ProgramMissing("rsyslog is needed: this suite unpacks Debian's rsyslog packages, and needs apt-get")
    downloads = CACHE / "debs"
    downloads.mkdir(parents=True, exist_ok=True)
    packages = RSYSLOG_PACKAGES + [p for p in RSYSLOG_LIBRARIES if _run(["dpkg", "-s", p]).returncode != 0]
    fetched = _run(["apt-get", "download", *packages], cwd=downloads)
    if fetched.returncode != 0 and os.geteuid() == 0:
        _run(["apt-get", "update", "-q"])
        fetched = _run(["apt-get", "download", *packages], cwd=downloads)
    if fetched.returncode != 0:
        raise ProgramMissing(f"could not download rsyslog's packages ({' '.join(packages)}): {fetched.stderr[-500:]}")
    found.root.mkdir(parents=True, exist_ok=True)
    for deb in sorted(downloads.glob("*.deb")):
        unpacked = _run(["dpkg-deb", "-x", str(deb), str(found.root)])
        if unpacked.returncode != 0:
            raise ProgramMissing(f"dpkg-deb -x {deb.name} failed: {unpacked.stderr}")
    if not all(p.exists() for p in wanted):
        raise ProgramMissing(f"rsyslog unpacked into {found.root} lacks {[str(p) for p in wanted if not p.exists()]}")
    return found


def syslog_ng() -> str:
    """The syslog-ng binary, from Debian's syslog-ng-core (installed when missing, as root)."""
    binary = shutil.which("syslog-ng") or "/usr/sbin/syslog-ng"
    if Path(binary).exists():
        return binary
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ProgramMissing("syslog-ng is needed: apt-get install syslog-ng-core (as root)")
    policy = Path("/usr/sbin/policy-rc.d")
    placed = not policy.exists()
    if placed:  # the package must not start the system syslog-ng
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "syslog-ng-core"]
        if _run(install).returncode != 0:
            _run(["apt-get", "update", "-q"])
            result = _run(install)
            if result.returncode != 0:
                raise ProgramMissing(f"apt-get install syslog-ng-core failed: {result.stderr[-500:]}")
    finally:
        if placed:
            policy.unlink()
    binary = shutil.which("syslog-ng") or "/usr/sbin/syslog-ng"
    if not Path(binary).exists():
        raise ProgramMissing("syslog-ng is still missing after apt-get install syslog-ng-core")
    return binary


def logger() -> str:
    """util-linux's logger (bsdutils on Debian)."""
    binary = shutil.which("logger") or "/usr/bin/logger"
    if not Path(binary).exists():
        raise ProgramMissing("util-linux's logger is needed: apt-get install bsdutils")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    if "util-linux" not in version:
        raise ProgramMissing(f"{binary} is not util-linux's logger ({version.strip()!r}): apt-get install bsdutils")
    return binary
