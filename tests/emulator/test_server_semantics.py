"""What a real Netwrix server does that the emulator must do too: both spellings of the write
path and 404 for others, DataSource and Item as the server shows them, NTLM."""

from __future__ import annotations

import httpx
import pytest
from httpx_ntlm import HttpNtlmAuth

from ingestor.emulator.app import API
from tests.conftest import enum_all, make_record
from tests.emulator.test_emulator import post, xml_body


@pytest.mark.parametrize("path", [f"{API}/", API])
def test_the_write_path_is_taken_with_and_without_the_trailing_slash(emulator, path):
    """Netwrix documents `.../activity_records/`; its own add-ons post to `.../activity_records`."""
    server = emulator()
    response = post(server, xml_body([make_record(1)]), path=path)
    assert (response.status_code, response.content) == (200, b"")
    assert server.emulator.store.total == 1


def test_write_is_not_an_endpoint(emulator):
    server = emulator()
    response = post(server, xml_body([make_record(1)]), path=f"{API}/write")
    assert (response.status_code, response.content) == (404, b"")
    assert server.emulator.store.total == 0


def test_records_read_back_as_the_server_shows_them(emulator):
    """DataSource is "Netwrix API" whatever was sent; the Item's name carries its type; the
    search filters see the same values."""
    server = emulator()
    post(server, xml_body([make_record(1, DataSource="Cisco IOS", Item={"Name": "Cisco IOS"})]))
    (record,) = enum_all(server.base_url)
    assert record["DataSource"] == "Netwrix API"
    assert record["Item"] == {"Name": "Cisco IOS (Integration)"}
    search = {"FilterList": {"DataSource": "Netwrix API"}}
    found = httpx.post(server.base_url + f"{API}/search", params={"format": "json"}, json=search).json()
    assert len(found["ActivityRecordList"]) == 1


def test_as_sent_keeps_data_source_and_item_as_written(emulator):
    server = emulator(as_sent=True)
    post(server, xml_body([make_record(1, DataSource="Cisco IOS", Item={"Name": "Cisco IOS"})]))
    (record,) = enum_all(server.base_url)
    assert record["DataSource"] == "Cisco IOS" and record["Item"] == {"Name": "Cisco IOS"}


@pytest.mark.parametrize("user", ["EXAMPLE\\svc-nwsyslog", "writer"])
def test_ntlm_handshake_on_one_connection(emulator, user):
    server = emulator(user=(user, "S3cret!"), auth_scheme="ntlm")
    body = xml_body([make_record(1)])
    bare = post(server, body)
    assert bare.status_code == 401 and bare.headers["www-authenticate"] == "NTLM" and bare.content == b""
    with httpx.Client(base_url=server.base_url, auth=HttpNtlmAuth(user, "S3cret!")) as client:
        response = client.post(f"{API}/", content=body, headers={"Content-Type": "application/xml"})
        assert response.status_code == 200
    assert server.emulator.store.total == 1
    with httpx.Client(base_url=server.base_url, auth=HttpNtlmAuth(user, "wrong")) as client:
        refused = client.post(f"{API}/", content=body, headers={"Content-Type": "application/xml"})
    assert refused.status_code == 401 and server.emulator.store.total == 1
