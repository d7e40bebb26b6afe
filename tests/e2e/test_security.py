"""Security properties of the running service, end to end.

Covered elsewhere and not repeated here: spool files are created 0600 with their WAL and SHM
(tests/ingestor/test_spool.py), `check-config` hides the password (tests/ingestor/
test_service.py), the accept list on UDP and TCP (tests/ingestor/test_sources.py), TLS modes
of the client (tests/ingestor/test_delivery.py), markup in any field by property test
(tests/ingestor/test_encoding.py).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from ingestor.config import ServiceConfig
from ingestor.emulator import EmulatorServer, EmulatorSettings
from ingestor.errors import ConfigError
from ingestor.loop import run
from ingestor.netwrix.config import NetwrixConfig
from ingestor.spool import Spool
from parsers.rules.loader import load_ruleset
from tests.ingestor.test_service import SUDO, send, until

from .test_hostile_traffic import running_service

SECRET = "Tr0ub4dor&3-never-print-me"


def test_tls_verification_is_on_by_default_and_an_untrusted_server_gets_nothing(tmp_path: Path) -> None:
    assert NetwrixConfig().tls.mode == "system"

    async def scenario() -> None:
        with EmulatorServer.running(EmulatorSettings(), tls=True) as emulator:
            assert emulator.base_url.startswith("https://")
            async with running_service(tmp_path, emulator.base_url) as service:
                await send(service, [SUDO % i for i in range(10)])
                await until(lambda: service.halted is not None)
                assert "certificate" in service.halted
                assert emulator.emulator.stats.get("requests", 0) == 0, "no request reached the server"
                await until(lambda: service.spool is not None and service.spool.records == 10)

    run(scenario())


def test_the_password_never_appears_in_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """A wrong password (401, delivery halts) with every logger at DEBUG, httpx's included, in
    the listening process (caplog) and in the delivery process (its stderr: fd 2, inherited)."""

    async def scenario() -> None:
        with EmulatorServer.running(EmulatorSettings(user=("writer", "right"))) as emulator:
            netwrix = {"url": emulator.base_url, "auth": {"method": "basic", "username": "writer", "password": SECRET}}
            async with running_service(tmp_path, emulator.base_url, netwrix=netwrix) as service:
                await send(service, [SUDO % i for i in range(5)])
                await until(lambda: service.halted is not None)
                assert "401" in service.halted

    with caplog.at_level(logging.DEBUG):
        run(scenario())
    delivery_log = capfd.readouterr().err
    assert "delivery halted" in delivery_log and "401" in delivery_log, delivery_log
    assert "DEBUG httpx" in delivery_log or "DEBUG httpcore" in delivery_log, "it logged at DEBUG too"
    assert SECRET not in caplog.text and SECRET not in delivery_log
    for record in caplog.records:
        assert SECRET not in str(record.args) and SECRET not in str(record.exc_info)


def test_the_password_is_not_in_the_config_objects_repr() -> None:
    config = ServiceConfig.model_validate(
        {"listeners": ["udp://127.0.0.1:0"], "netwrix": {"auth": {"username": "u", "password": SECRET}}}
    )
    assert SECRET not in repr(config) and SECRET not in str(config) and SECRET not in config.model_dump_json()


def test_the_spool_and_its_quarantine_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)  # the most permissive umask a service could inherit
    try:
        path = tmp_path / "state" / "spool.db"
        with Spool(path, fmt="xml") as spool:
            spool.apply(inserts=[b"<ActivityRecord/>"])
            spool.apply(quarantines=[(1, b"<ActivityRecord/>", "400: bad")])
            assert spool.quarantine_count == 1
            files = sorted(p for p in path.parent.iterdir() if p.name.startswith("spool.db"))
            assert {p.name for p in files} >= {"spool.db", "spool.db-wal"}
            for f in files:
                assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    finally:
        os.umask(old)


def test_with_secure_delete_on_a_delivered_record_leaves_nothing_in_the_file(tmp_path: Path) -> None:
    """`spool.secure_delete: true`: once delivered (deleted) and checkpointed, no byte of a
    record is left in the spool file, pages freed whole included; by default (SQLite's FAST)
    only where that costs no extra write, so a freed page may keep it until reused (this
    SQLite's pragma reads back what was asked)."""
    path = tmp_path / "spool.db"
    secret = b"<Who>s3cr3t-operator</Who>"
    for on in (True, False):
        path.unlink(missing_ok=True)
        with Spool(path, fmt="xml", secure_delete=on) as spool:
            spool.apply(inserts=[b"<ActivityRecord>" + secret + b"x" * 900 + b"</ActivityRecord>"] * 40)
            spool.apply(deletes=[i for i, _ in spool.read_after(0, 100)])
            assert spool.records == 0
            assert spool._db.execute("PRAGMA secure_delete").fetchone() == ((1,) if on else (2,))
        if on:
            assert secret not in path.read_bytes()


def test_with_secure_delete_records_delivered_out_of_a_row_leave_the_file_before_the_rest(tmp_path: Path) -> None:
    """A commit's records share a row: with `secure_delete` those delivered must not wait in
    the file for their neighbours; the ones still waiting stay whole."""
    path = tmp_path / "spool.db"
    delivered = [b"<Who>s3cr3t-%d</Who>" % i + b"x" * 300 for i in range(20)]
    waiting = [b"<Who>keep-%d</Who>" % i + b"y" * 300 for i in range(20)]
    for on in (True, False):
        path.unlink(missing_ok=True)
        with Spool(path, fmt="xml", secure_delete=on) as spool:
            spool.apply(inserts=[*delivered, *waiting])
            rows = spool.read_after(-1, 100)
            spool.apply(deletes=[key for key, _ in rows[:20]])
            assert [data for _, data in spool.read_after(-1, 100)] == waiting
            assert (spool.records, spool.bytes) == (20, sum(map(len, waiting)))
        left = path.read_bytes()
        assert all(data in left for data in waiting)
        assert (b"s3cr3t-" in left) is not on  # (without it the row stays as it was until all of it goes)


@pytest.mark.parametrize(
    "payload",
    [
        "!!python/object/apply:os.system ['touch {marker}']",
        "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
        "!!python/name:os.system",
    ],
)
def test_a_rule_file_cannot_run_code(tmp_path: Path, payload: str) -> None:
    marker = tmp_path / "pwned"
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "evil.yaml").write_text(
        "pack: evil\nrules:\n  - id: evil.one\n    description: " + payload.format(marker=marker) + "\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_ruleset([rules], builtin=False)
    assert "evil.yaml:4" in str(caught.value)
    assert not marker.exists()


@pytest.mark.parametrize("template", ["{user.__class__}", "{user.__init__.__globals__}", "{__import__('os')}", "{0}"])
def test_a_template_is_a_field_lookup_never_an_expression(tmp_path: Path, template: str) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "site.yaml").write_text(
        "pack: site\nrules:\n  - id: site.one\n    description: x\n"
        "    match: {program: sshd, regex: 'for (?P<user>\\S+)'}\n"
        f'    record: {{Action: Read, ObjectType: X, Who: "{template}", What: x}}\n'
        "    examples: [{line: 'Mar  4 10:00:01 h sshd: for bob', record: {Who: bob}}]\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_ruleset([rules], builtin=False)
    assert "site.yaml:6" in str(caught.value) and "Who" in str(caught.value)


def test_markup_in_a_message_cannot_forge_record_fields(tmp_path: Path) -> None:
    """A user name and command crafted to close the element and open new ones arrive as text:
    the record keeps one Who (the real one), and the server's schema accepts the body."""
    forged = (
        b"<86>Mar  4 10:00:01 app01 sudo:    alice : TTY=pts/0 ; PWD=/ ; USER=root ; "
        b"COMMAND=/bin/true</What><Who>root</Who><Action>Removed</Action><What>x"
    )
    forged_user = b"<86>Mar  4 10:00:01 app01 sudo:    eve</Who><Who>root : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/x"

    async def scenario() -> None:
        with EmulatorServer.running(EmulatorSettings()) as emulator:
            async with running_service(tmp_path, emulator.base_url) as service:
                await send(service, [forged, forged_user])
                await until(lambda: service.pipeline is not None and service.pipeline.stats.received == 2)
                want = service.pipeline.stats.records if service.pipeline else 0
                await until(lambda: emulator.emulator.store.total == want)
                records = [r for _, r in emulator.emulator.store.records()]
                assert emulator.emulator.stats.get("rejected_requests", 0) == 0
                assert records and all(r["Action"] != "Removed" for r in records)
                first = next(r for r in records if r["Who"] == "alice")
                assert "</What><Who>root</Who>" in str(first)

    run(scenario())
