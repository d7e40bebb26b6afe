"""A service process on a filesystem of its own, and the host faults done to it.

    python3 -m tests.e2e.hostfs KIND SIZE DIR [IMAGE] -- COMMAND...

runs inside a private mount namespace (`unshare --mount`, with `--map-root-user` when not
root, so no root is needed where user namespaces are allowed): it mounts a filesystem of SIZE on
DIR (KIND `tmpfs`, or `ext4` on a loop-mounted image file with errors=remount-ro: IMAGE, made
if missing, else checked with e2fsck and mounted again), starts COMMAND (its output to
stderr), and then obeys one command per line on stdin, answering one line on stdout:

    stat NAME      the size of DIR/NAME in bytes (-1 if there is none)
    fserror        make the ext4 filesystem fail as a disk does (it turns read-only)
    term | kill    SIGTERM / SIGKILL the service
    stop | cont    SIGSTOP / SIGCONT the service
    wait           wait for the service to end; answers its exit code

`HostFs` is the test side.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO


def _serve(kind: str, size: str, folder: Path, image_arg: str | None, command: list[str]) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    device = None
    image = None
    scratch = None
    if kind == "tmpfs":
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)], check=True)
    else:
        if image_arg is None:
            scratch = Path(tempfile.mkdtemp(prefix="nwsyslog-hostfs-"))
            image = scratch / "disk.img"
        else:
            image = Path(image_arg)
        if image.exists():  # a disk that failed before: repaired, as an operator would
            subprocess.run(["e2fsck", "-fy", str(image)], capture_output=True, check=False)
        else:
            subprocess.run(["truncate", "-s", size, str(image)], check=True)
            subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
        subprocess.run(["mount", "-o", "loop,errors=remount-ro", str(image), str(folder)], check=True)
        device = Path(subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(folder)], capture_output=True,
                                     text=True, check=True).stdout.strip()).name  # fmt: skip
    service = subprocess.Popen(command, stdout=sys.stderr)
    out: IO[str] = sys.stdout
    try:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            verb = words[0]
            answer = "ok"
            if verb == "stat":
                target = folder / words[1]
                answer = str(target.stat().st_size if target.exists() else -1)
            elif verb == "fserror" and device is not None:
                Path(f"/sys/fs/ext4/{device}/trigger_fs_error").write_text("nwsyslog test: the disk failed")
            elif verb in ("term", "kill", "stop", "cont"):
                sig = {"term": signal.SIGTERM, "kill": signal.SIGKILL, "stop": signal.SIGSTOP, "cont": signal.SIGCONT}
                if service.poll() is None:
                    service.send_signal(sig[verb])
            elif verb == "wait":
                answer = str(service.wait())
            else:
                answer = f"unknown command {verb}"
            print(answer, file=out, flush=True)
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()
        if subprocess.run(["umount", str(folder)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(folder)], check=False)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


class HostFs:
    """The test side: the service started under `python -m tests.e2e.hostfs`, and its faults."""

    def __init__(
        self, kind: str, size: str, folder: Path, command: list[str], log: Path, image: Path | None = None
    ) -> None:
        prefix = ["unshare", "--mount", "--propagation", "private"]
        if os.geteuid() != 0:
            prefix = ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"]
        self.log = log
        self._log_file = log.open("wb")
        self._process = subprocess.Popen(
            [
                *prefix,
                *(sys.executable, "-m", "tests.e2e.hostfs", kind, size, str(folder)),
                *([str(image)] if image is not None else []),
                "--",
                *command,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )

    def ask(self, command: str) -> str:
        """Send one command; its answer."""
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()
        return self._process.stdout.readline().strip()

    def size(self, name: str) -> int:
        """The size of a file on the service's filesystem (-1 when missing)."""
        return int(self.ask(f"stat {name}"))

    def close(self) -> None:
        """Stop everything (the service is killed if it still runs) and unmount."""
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()
        self._log_file.close()

    def text(self) -> str:
        """What the service logged so far."""
        return self.log.read_text(errors="replace")


def main() -> int:
    args = sys.argv[1:]
    split = args.index("--")
    kind, size, folder, *image = args[:split]
    return _serve(kind, size, Path(folder), image[0] if image else None, args[split + 1 :])


if __name__ == "__main__":
    raise SystemExit(main())
