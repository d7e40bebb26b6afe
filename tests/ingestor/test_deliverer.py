"""The delivery process's lifecycle seen from the process that starts it (the service's own
tests cover delivery through it)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_process_that_exits_without_stopping_it_does_not_hang_and_leaves_no_process(tmp_path: Path) -> None:
    """An unexpected exit of the starting process (no `stop()`): multiprocessing's exit handler
    waits for its children; the pipe is closed before it, so the delivery process stops by
    itself and both are gone."""
    script = textwrap.dedent(
        f"""
        import asyncio
        from pathlib import Path
        from ingestor.netwrix.config import BatchConfig, NetwrixConfig
        from ingestor.deliverer import DeliveryProcess, DeliverySettings

        held = []  # still referenced when the interpreter exits (its pipe is not closed by then)

        async def main():
            settings = DeliverySettings(
                spool_path=Path({str(tmp_path / "spool.db")!r}),
                spool_options=dict(fmt="xml", sync="normal", secure_delete=False),
                netwrix=NetwrixConfig(url="http://127.0.0.1:9"),
                batching=BatchConfig(), shutdown_timeout=1.0,
            )
            process = DeliveryProcess(settings)
            await process.start()
            held.append(process)
            print(process.pid, flush=True)

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    child = int(done.stdout.split()[0])
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child), "the delivery process is gone"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
    return " Z " not in stat  # a zombie has ended
