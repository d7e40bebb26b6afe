"""The emulator's API surface, over real loopback HTTP."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from lxml import etree

from ingestor.emulator import EmulatorServer, EmulatorSettings
from ingestor.emulator.app import API, POISON_DESCRIPTION
from ingestor.emulator.process import EmulatorProcess
from ingestor.netwrix.encoding import JsonEncoder, XmlEncoder
from ingestor.netwrix.records import ERROR_NAMESPACE, NAMESPACE
from tests.conftest import enum_all, make_record

XML = {"Content-Type": "application/xml; charset=UTF-8"}
JSON = {"Content-Type": "application/json; charset=UTF-8"}


def xml_body(records):
    enc = XmlEncoder()
    return enc.join([enc.encode(r) for r in records])


def json_body(records):
    enc = JsonEncoder()
    return enc.join([enc.encode(r) for r in records])


def post(server, body, *, fmt="xml", path=f"{API}/", auth=None):
    params = {"format": "json"} if fmt == "json" else None
    headers = JSON if fmt == "json" else XML
    return httpx.post(server.base_url + path, content=body, params=params, headers=headers, auth=auth)


def test_write_answers_200_with_an_empty_text_body(emulator):
    server = emulator()
    response = post(server, xml_body([make_record(1)]))
    assert response.status_code == 200 and response.content == b""
    assert response.headers["content-type"].startswith("text/plain")


def test_children_in_any_order_are_accepted(emulator):
    server = emulator()
    body = (
        f'<ActivityRecordList xmlns="{NAMESPACE}"><ActivityRecord>'
        "<DetailList><Detail><After>2</After><PropertyName>p</PropertyName><Before>1</Before></Detail></DetailList>"
        "<ObjectType>Mailbox</ObjectType><When>2017-03-17T09:37:11+03:00</When><Where>srv</Where>"
        "<Item><Name>i</Name></Item><MonitoringPlan><ID>{1}</ID><Name>m</Name></MonitoringPlan>"
        "<What>box</What><Action>Modified</Action><Who>admin</Who>"
        "</ActivityRecord></ActivityRecordList>"
    ).encode()
    assert post(server, body).status_code == 200
    [record] = enum_all(server.base_url)
    assert record["DetailList"] == [{"After": "2", "PropertyName": "p", "Before": "1"}]


def test_schema_invalid_xml_gets_400_with_an_error_list(emulator):
    server = emulator()
    body = xml_body([make_record(1), make_record(2)]).replace(b"user2", b"u" * 300)
    response = post(server, body)
    assert response.status_code == 400
    root = etree.fromstring(response.content)
    assert root.tag == f"{{{ERROR_NAMESPACE}}}ErrorList"
    ns = {"e": ERROR_NAMESPACE}
    assert root.findtext("e:Error/e:Category", namespaces=ns) == "XMLError"
    assert "Who" in root.findtext("e:Error/e:Description", namespaces=ns)
    assert root.findtext("e:Error/e:Location", namespaces=ns).startswith("ActivityRecord 2, field Who")
    assert server.emulator.store.total == 0  # all or nothing


def test_malformed_xml_gets_400(emulator):
    server = emulator()
    response = post(server, b"<ActivityRecordList><ActivityRecord>")
    assert response.status_code == 400 and b"XMLError" in response.content


def test_json_invalid_gets_400_with_a_json_error_list(emulator):
    server = emulator()
    bad = json.loads(json_body([make_record(1)]))
    bad[0]["Action"] = "Deleted"
    response = post(server, json.dumps(bad).encode(), fmt="json")
    assert response.status_code == 400
    [error] = response.json()["ErrorList"]
    assert error["Category"] == "InputError" and "Deleted" in error["Description"]
    assert error["Location"] == "ActivityRecord 1, field Action"


@pytest.mark.parametrize(
    "payload",
    [{"not": "a list"}, [1], [{"Who": 5}], [{"MonitoringPlan": "flat"}], [{"DetailList": {}}], [{"a b": "x"}]],
)
def test_json_type_errors_get_400(emulator, payload):
    server = emulator()
    response = post(server, json.dumps(payload).encode(), fmt="json")
    assert response.status_code == 400
    assert response.json()["ErrorList"][0]["Category"] == "InputError"


def test_corrupted_json_gets_500_with_an_empty_body(emulator):
    server = emulator()
    response = post(server, b'[{"Who": ', fmt="json")
    assert response.status_code == 500 and response.content == b""


def test_xml_sent_without_format_json_is_treated_as_xml(emulator):
    server = emulator()
    assert post(server, json_body([make_record(1)])).status_code == 400


def test_oversize_body_gets_413_with_an_empty_body(emulator):
    server = emulator(max_body_bytes=1000)
    response = post(server, xml_body([make_record(i) for i in range(5)]))
    assert response.status_code == 413 and response.content == b""
    assert post(server, xml_body([make_record(1)])).status_code == 200


def test_basic_auth_401_has_an_empty_body_and_a_challenge(emulator):
    server = emulator(user=("writer", "pw"))
    body = xml_body([make_record(1)])
    for auth in (None, ("writer", "bad"), ("other", "pw")):
        response = post(server, body, auth=auth)
        assert response.status_code == 401 and response.content == b""
        assert response.headers["www-authenticate"].startswith("Basic")
    assert post(server, body, auth=("writer", "pw")).status_code == 200
    assert httpx.get(server.base_url + f"{API}/enum").status_code == 401


def test_wrong_path_and_method_get_404_and_405_with_empty_bodies(emulator):
    server = emulator()
    r404 = httpx.post(server.base_url + "/netwrix/api/v1/nothing", content=b"x")
    r405 = httpx.get(server.base_url + f"{API}/")
    assert (r404.status_code, r404.content) == (404, b"")
    assert (r405.status_code, r405.content) == (405, b"")


def test_enum_pages_with_count_and_continuation_mark_in_xml(emulator):
    server = emulator()
    post(server, xml_body([make_record(i) for i in range(7)]))
    post(server, json_body([make_record(i) for i in range(7, 10)]), fmt="json")
    first = httpx.get(server.base_url + f"{API}/enum", params={"count": 4})
    root = etree.fromstring(first.content)
    ns = {"a": NAMESPACE}
    assert etree.QName(root[0]).localname == "ContinuationMark"  # the mark comes first
    mark = root.findtext("a:ContinuationMark", namespaces=ns)
    assert len(root.findall("a:ActivityRecord", ns)) == 4
    seen = [r.findtext("a:What", namespaces=ns) for r in root.findall("a:ActivityRecord", ns)]
    while mark:
        body = f'<ContinuationMark xmlns="{NAMESPACE}">{mark}</ContinuationMark>'.encode()
        page = etree.fromstring(httpx.post(server.base_url + f"{API}/enum?count=4", content=body, headers=XML).content)
        seen += [r.findtext("a:What", namespaces=ns) for r in page.findall("a:ActivityRecord", ns)]
        mark = page.findtext("a:ContinuationMark", namespaces=ns)
    assert seen == [f"session #{i} on vty0" for i in range(10)]


def test_enum_default_page_is_1000_and_the_last_page_has_no_mark(emulator):
    server = emulator()
    for chunk in range(3):
        post(server, xml_body([make_record(chunk * 500 + i) for i in range(500)]))
    page = httpx.get(server.base_url + f"{API}/enum", params={"format": "json"}).json()
    assert len(page["ActivityRecordList"]) == 1000 and "ContinuationMark" in page
    rest = httpx.post(server.base_url + f"{API}/enum", params={"format": "json"}, json=page["ContinuationMark"]).json()
    assert len(rest["ActivityRecordList"]) == 500 and "ContinuationMark" not in rest


@pytest.mark.parametrize("count", ["abc", "1.5", "0"])
def test_enum_bad_count_is_an_input_error(emulator, count):
    server = emulator()
    response = httpx.get(server.base_url + f"{API}/enum", params={"count": count, "format": "json"})
    assert response.status_code == 400
    assert response.json()["ErrorList"][0]["Category"] == "InputError"


def test_enum_bad_mark_is_an_input_error(emulator):
    server = emulator()
    response = httpx.post(server.base_url + f"{API}/enum", params={"format": "json"}, json="garbage")
    assert response.status_code == 400


def test_search_filters_by_field_operator_and_time(emulator):
    server = emulator()
    records = [
        make_record(1, Who="alice", Action="Modified", ObjectType="Configuration"),
        make_record(2, Who="bob", Action="Failed Logon"),
        make_record(3, Who="alice", Action="Failed Logon", Where="edge-rtr"),
        make_record(4, Who="Administrator", Action="Added"),
    ]
    post(server, xml_body(records))

    def search(filters, fmt="json"):
        response = httpx.post(
            server.base_url + f"{API}/search", params={"format": "json"}, json={"FilterList": filters}
        )
        assert response.status_code == 200, response.text
        return [r["What"].split("#")[1].split()[0] for r in response.json()["ActivityRecordList"]]

    assert search({"Who": "alice"}) == ["1", "3"]
    assert search({"Action": ["Added", "Modified"]}) == ["1", "4"]
    assert search({"Who": {"NotEqualTo": "Administrator"}, "Action": "Failed Logon"}) == ["2", "3"]
    assert search({"Where": {"StartsWith": "EDGE"}}) == ["3"]
    assert search({"When": {"From": "2026-11-22T12:00:02Z", "To": "2026-11-22T12:00:03Z"}}) == ["2", "3"]
    xml = (
        f'<ActivityRecordSearch xmlns="{NAMESPACE}"><FilterList>'
        '<Who Operator="Contains">ali</Who><ObjectType Operator="DoesNotContain">Config</ObjectType>'
        "</FilterList></ActivityRecordSearch>"
    ).encode()
    root = etree.fromstring(httpx.post(server.base_url + f"{API}/search", content=xml, headers=XML).content)
    whats = [r.findtext(f"{{{NAMESPACE}}}What") for r in root.findall(f"{{{NAMESPACE}}}ActivityRecord")]
    assert whats == ["session #3 on vty0"]


def test_search_pages_until_an_empty_answer(emulator):
    server = emulator()
    post(server, xml_body([make_record(i) for i in range(5)]))
    url = server.base_url + f"{API}/search"
    got, mark = [], None
    for _ in range(10):
        body = {"FilterList": {"Who": "user"}, **({"ContinuationMark": mark} if mark else {})}
        page = httpx.post(url, params={"format": "json", "count": 2}, json=body).json()
        if not page["ActivityRecordList"]:
            break
        got += page["ActivityRecordList"]
        mark = page["ContinuationMark"]
    assert len(got) == 5


def test_search_rejects_unknown_filters(emulator):
    server = emulator()
    response = httpx.post(
        server.base_url + f"{API}/search", params={"format": "json"}, json={"FilterList": {"Colour": "x"}}
    )
    assert response.status_code == 400


def test_records_survive_a_restart_with_db(tmp_path):
    db = str(tmp_path / "emulator.db")
    with EmulatorServer.running(EmulatorSettings(db=db)) as first:
        post(first, xml_body([make_record(i) for i in range(3)]))
    with EmulatorServer.running(EmulatorSettings(db=db)) as second:
        post(second, xml_body([make_record(3)]))
        assert [r["What"] for r in enum_all(second.base_url)] == [f"session #{i} on vty0" for i in range(4)]


def test_fault_injection_rate_is_roughly_honoured(emulator):
    server = emulator(fail_rate=0.25, fail_status=500, seed=1)
    statuses = [post(server, xml_body([make_record(i)])).status_code for i in range(200)]
    failures = statuses.count(500)
    assert 25 <= failures <= 75 and set(statuses) == {200, 500}
    assert server.emulator.store.total == statuses.count(200)


def test_an_outage_fails_every_write_for_its_duration_from_the_first(emulator):
    server = emulator(outage_s=0.5)
    first = post(server, xml_body([make_record(1)]))
    during = post(server, xml_body([make_record(2)]))
    time.sleep(0.6)
    after = post(server, xml_body([make_record(3)]))
    assert (first.status_code, during.status_code, after.status_code) == (503, 503, 200)
    assert server.emulator.store.total == 1


def test_poison_refuses_any_write_holding_the_text_with_500_and_stores_nothing(emulator):
    server = emulator(poison="POISON-1")
    bad = [make_record(1), make_record(2, What="session #2 POISON-1")]
    answer = post(server, xml_body(bad))
    assert answer.status_code == 500 and answer.headers["content-type"].startswith("application/xml")
    root = etree.fromstring(answer.content)
    ens = "{" + ERROR_NAMESPACE + "}"
    assert root.tag == ens + "ErrorList"
    assert root.findtext(f"{ens}Error/{ens}Category") == "ServerError"
    assert root.findtext(f"{ens}Error/{ens}Description") == POISON_DESCRIPTION  # no per-record status
    answer = post(server, json_body(bad), fmt="json")
    assert answer.status_code == 500 and answer.json()["ErrorList"][0]["Category"] == "ServerError"
    assert server.emulator.store.total == 0  # nothing of a refused body is stored
    assert post(server, xml_body(bad[:1])).status_code == 200  # the same body without that record
    assert server.emulator.store.total == 1
    assert server.emulator.stats["poisoned"] == 2 and server.emulator.stats["status_500"] == 2


def test_an_outage_comes_before_the_poison(emulator):
    server = emulator(poison="POISON-1", outage_s=0.3)
    body = xml_body([make_record(2, What="POISON-1")])
    assert post(server, body).status_code == 503
    time.sleep(0.35)
    assert post(server, body).status_code == 500


def test_latency_is_injected(emulator):
    server = emulator(latency_ms=150)
    started = time.monotonic()
    post(server, xml_body([make_record(1)]))
    assert time.monotonic() - started >= 0.15


# The command line, as a user runs it.


def test_cli_emulator_answers_200_400_413_401(tmp_path):
    emu = EmulatorProcess("--user", "admin:secret", "--max-body-bytes", "4096", "--db", str(tmp_path / "e.db"))
    url = emu.url
    try:
        write = url + f"{API}/"
        ok = xml_body([make_record(1)])
        assert httpx.post(write, content=ok, headers=XML, auth=("admin", "secret")).status_code == 200
        invalid = ok.replace(b"Successful Logon", b"Logon OK")
        r400 = httpx.post(write, content=invalid, headers=XML, auth=("admin", "secret"))
        assert r400.status_code == 400 and b"<ErrorList" in r400.content
        big = xml_body([make_record(i) for i in range(20)])
        assert httpx.post(write, content=big, headers=XML, auth=("admin", "secret")).status_code == 413
        assert httpx.post(write, content=ok, headers=XML).status_code == 401
        enum = httpx.get(url + f"{API}/enum?format=json", auth=("admin", "secret")).json()
        assert len(enum["ActivityRecordList"]) == 1
    finally:
        assert emu.stop() == 0


def test_cli_tls_prints_thumbprints_a_client_can_pin():
    with EmulatorProcess("--tls") as emu:
        assert emu.url.startswith("https://")
        lines = [emu.readline() for _ in range(6)]
        sha256 = next(line.split()[-1] for line in lines if "SHA-256" in line)
        assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", sha256)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--listen", "nonsense"], "HOST:PORT"), (["--user", "nocolon"], "NAME:PASSWORD")],
)
def test_cli_bad_options_exit_2_with_one_clear_message(args, message):
    env = {**os.environ}
    result = subprocess.run(
        [sys.executable, "-m", "ingestor.cli", "emulator", *args], capture_output=True, text=True, timeout=30, env=env
    )
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_cli_port_in_use_exits_3():
    with EmulatorProcess() as emu:
        port = emu.url.rsplit(":", 1)[1]
        result = subprocess.run(
            [sys.executable, "-m", "ingestor.cli", "emulator", "--listen", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 3 and "cannot listen" in result.stderr


def test_fast_order_schema_only_ever_accepts_what_the_real_schema_accepts():
    from ingestor.emulator.wire import _state

    body = xml_body([make_record(i, DataSource="d", IsArchiveOnly=True) for i in range(3)])
    root = etree.fromstring(body)
    assert _state.fast_schema.validate(root) and _state.schema.validate(root)
    swapped = etree.fromstring(
        body.replace(b"<Who>user0</Who>", b"", 1).replace(b"</Action>", b"</Action><Who>user0</Who>", 1)
    )
    assert not _state.fast_schema.validate(swapped)  # other order: the fast path declines ...
    assert _state.schema.validate(swapped)  # ... and the real schema accepts


def test_validate_every_checks_the_first_and_every_nth_body_and_counts_the_rest(emulator):
    server = emulator(validate_every=3)
    good = xml_body([make_record(1), make_record(2)])
    bad = good.replace(b"user2", b"u" * 300)  # schema-invalid
    assert post(server, bad).status_code == 400  # body 1: checked
    assert post(server, bad).status_code == 200  # bodies 2 and 3: counted, not checked
    assert post(server, good).status_code == 200
    assert post(server, bad).status_code == 400  # body 4: checked again
    assert post(server, b"<not-a-list/>").status_code == 400  # body 5: not even a record list
    assert post(server, json_body([make_record(3)]), fmt="json").status_code == 200  # body 6
    assert server.emulator.store.total == 5
    assert server.emulator.stats["unchecked_writes"] == 3


def test_a_tls_dir_keeps_the_certificate_across_restarts(tmp_path: Path) -> None:
    """`nwsyslog emulator --tls --tls-dir DIR` reuses what DIR holds, so a pinned thumbprint
    survives a restart; an empty or unreadable DIR gets a new certificate."""
    from ingestor.emulator.server import existing_certificate, self_signed_certificate

    assert existing_certificate(tmp_path) is None
    made = self_signed_certificate(tmp_path, ["127.0.0.1"])
    again = existing_certificate(tmp_path)
    assert again is not None and (again.sha1, again.sha256) == (made.sha1, made.sha256)
    (tmp_path / "emulator-key.pem").write_text("not a key")
    assert existing_certificate(tmp_path) is None
