"""Several instances behind an existing UDP load balancer: nginx `stream` from Debian's packages
(installed by .ci/run), `hash $remote_addr consistent` and `proxy_bind $remote_addr transparent`,
so each instance sees the device's own address (Where/Workstation, accept list, per-source
settings depend on it). Devices are played by senders bound to 127.0.0.2 and 127.0.0.3."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from ingestor.emulator.process import EmulatorProcess
from tests.conftest import enum_all
from tests.e2e.test_service import ServiceProcess, free_port, sudo_lines, wait_for, whats

NGINX_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")


def nginx_config(tmp: Path, listen: int, upstreams: list[int]) -> Path:
    servers = "".join(f"        server 127.0.0.1:{port};\n" for port in upstreams)
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""load_module {NGINX_MODULE};
user root;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
stream {{
    upstream nwsyslog_udp {{
        hash $remote_addr consistent;
{servers}    }}
    server {{
        listen 127.0.0.1:{listen} udp;
        proxy_pass nwsyslog_udp;
        proxy_bind $remote_addr transparent;
        proxy_responses 0;
        proxy_timeout 1s;
    }}
}}
"""
    )
    return conf


PACKAGES = ["nginx-light", "libnginx-mod-stream"]


def ensure_nginx() -> str:
    """The nginx binary, installed from Debian's packages first when missing (as root)."""
    if not NGINX_MODULE.exists() and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
        if subprocess.run(install, env=env, capture_output=True, timeout=400).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=400)
            subprocess.run(install, env=env, capture_output=True, timeout=400)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists() and NGINX_MODULE.exists(), (
        f"this test needs nginx with the stream module: apt-get install {' '.join(PACKAGES)} (as root)"
    )
    return nginx


@pytest.mark.timeout(900)
def test_two_instances_behind_nginx_keep_the_device_address(tmp_path: Path) -> None:
    nginx = ensure_nginx()
    with EmulatorProcess("--db", str(tmp_path / "emulator.db")) as emulator:
        instances = []
        for name in ("a", "b"):
            folder = tmp_path / name
            folder.mkdir()
            config = folder / "nwsyslog.yaml"
            config.write_text(
                f"listeners: [udp://127.0.0.1:0]\nnetwrix: {{url: {emulator.url}}}\nbatching: {{linger: 0.1}}\n"
                f"spool: {{path: {folder / 'spool.db'}}}\nmetrics: {{listen: null}}\n"
            )
            instances.append(ServiceProcess(config))
        port = free_port()
        conf = nginx_config(tmp_path, port, [i.ports["udp"] for i in instances])
        proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp_path), "-g", "daemon off;"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            wait_for(lambda: (tmp_path / "nginx.pid").exists() or proc.poll() is not None, 20, "nginx to start")
            assert proc.poll() is None, proc.communicate()[1]
            for n, device in enumerate(("127.0.0.2", "127.0.0.3")):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind((device, 0))
                    for line in sudo_lines(n * 100, 100):
                        s.sendto(line, ("127.0.0.1", port))
            wait_for(lambda: len(enum_all(emulator.url)) >= 200, 60, "200 records through nginx")
            records = enum_all(emulator.url)
            assert set(whats(records)) == {f"/bin/echo {i}" for i in range(200)}
            by_device = {r["Workstation"] for r in records if r["What"] in {"/bin/echo 5", "/bin/echo 105"}}
            assert by_device == {"127.0.0.2", "127.0.0.3"}, "each instance saw the device's own address"
            assert {r["Workstation"] for r in records} == {"127.0.0.2", "127.0.0.3"}
        finally:
            proc.terminate()
            proc.communicate(timeout=20)
            for instance in instances:
                instance.stop()
