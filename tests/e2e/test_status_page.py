"""The status page (`/` of the metrics listener) in a real headless Chromium, against a real
service: `nwsyslog run` as a subprocess, syslog over UDP, the in-process emulator or a separate
one that answers 401; and the metrics listener's authentication.

The browser is Debian's `chromium` with its `chromium-driver` (.ci/run installs both), driven
by selenium. Without them these tests fail (never skip) and say which packages to install.
With NWSYSLOG_SCREENSHOT=1 the first test saves the page as docs/status-page.png (1280x900).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from ingestor.config import MetricsConfig
from ingestor.emulator.process import EmulatorProcess
from ingestor.metrics import Metrics, Readings
from ingestor.sender import Sender

from .test_service import ROOT, SAMPLES, ServiceProcess, expected_records, free_port, wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = ROOT / "docs" / "status-page.png"

# The page's totals (id="total-NAME") and the /metrics samples they must equal (summed over labels).
TOTALS = {
    "received": "nwsyslog_received_total",
    "records": "nwsyslog_records_total",
    "unmatched": "nwsyslog_unmatched_total",
    "sent": "nwsyslog_sent_total",
    "retries": "nwsyslog_retries_total",
    "parse_errors": "nwsyslog_parse_errors_total",
    "dropped_by_rule": "nwsyslog_dropped_by_rule_total",
    "quarantined": "nwsyslog_quarantined",
    "kernel_drops": "nwsyslog_udp_kernel_drops_total",
    "overload_dropped": "nwsyslog_overload_dropped_total",
    "refused": "nwsyslog_accept_list_dropped_total",
}

FROB = b"<13>Dec  2 10:00:%02d web1 frobnicator[12]: user %s frobbed widget %d"
USERS = (b"alice", b"bob", b"carol", b"dave", b"erin", b"frank", b"grace", b"heidi")
# Attacker-controlled text: it must reach the page as text, never as markup.
PROBE = b"<13>Dec  2 10:00:30 web1 xssprobe[7]: <img src=x onerror=\"document.title='pwned'\"><b>bold</b>"


# --- the browser ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module, 1280x900."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: the status page tests need Debian's packages chromium and "
            "chromium-driver (apt-get install chromium chromium-driver; .ci/run installs them when run as root)",
            pytrace=False,
        )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed: install the test extra (pip install '.[test]')", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--force-device-scale-factor=1", "--lang=en-US",
                "--no-first-run", "--disable-extensions", "--disable-background-networking"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER), log_output=subprocess.DEVNULL), options=options)
    try:
        driver.set_page_load_timeout(30)
        # The viewport itself 1280x900 (--window-size is the window's, with room for its frame).
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
        )
        yield driver
    finally:
        driver.quit()


def page_state(driver: Any) -> dict[str, Any]:
    """What the page shows, read from its ids and data attributes."""
    return driver.execute_script(
        """
        const value = (el) => el && el.dataset.value !== "" ? Number(el.dataset.value) : null;
        const out = {totals: {}, listeners: {}, refused: {}, shapes: {}, charts: {}};
        out.loaded = document.body.dataset.loaded === "true";
        out.stale = document.body.dataset.stale === "true";
        out.updated = Number(document.body.dataset.updated || 0);
        document.querySelectorAll("[id^=total-]").forEach(el => { out.totals[el.id.slice(6)] = value(el); });
        document.querySelectorAll("#listeners tr[data-listener]").forEach(tr => {
            out.listeners[tr.dataset.listener] = value(tr.querySelector("[data-field=received]")); });
        document.querySelectorAll("#refused tr[data-source]").forEach(tr => {
            out.refused[tr.dataset.source] = value(tr.querySelector("[data-value]")); });
        document.querySelectorAll("[data-shape-id]").forEach(el => {
            const q = (sel) => el.querySelector(sel);
            out.shapes[el.dataset.shapeId] = {
                count: value(q(".shape-count")), key: q(".shape-key").textContent,
                template: q(".shape-template").textContent,
                hosts: q(".shape-hosts") ? q(".shape-hosts").textContent : "",
                samples: Array.from(el.querySelectorAll(".shape-samples li")).map(li => li.textContent),
                draft: q("pre.shape-draft") ? q("pre.shape-draft").textContent : null,
            };
        });
        document.querySelectorAll("svg[id^=chart-]").forEach(el => {
            out.charts[el.id.slice(6)] = {points: Number(el.dataset.points || 0),
                                          rate: value(document.getElementById("rate-" + el.id.slice(6)))}; });
        const d = document.getElementById("delivery");
        out.delivery = {state: d.dataset.state, label: document.getElementById("delivery-state").textContent,
                        since: document.getElementById("delivery-since").textContent,
                        reason: document.getElementById("delivery-reason").textContent};
        const ready = document.getElementById("ready");
        out.ready = {ok: ready.dataset.ok, text: ready.textContent};
        out.spool = {depth: value(document.getElementById("spool-depth"))};
        out.title = document.title;
        out.injected = document.querySelectorAll("main img, main b, main script").length;
        return out;
        """
    )


def wait_page(driver: Any, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
    """The page's state once `predicate` holds (AssertionError with the last state otherwise)."""
    deadline = time.monotonic() + timeout
    while True:
        state = page_state(driver)
        if predicate(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for the page to show {what}; it shows {json.dumps(state)[:3000]}")
        time.sleep(0.2)


def refreshed_since(driver: Any, moment: float, timeout: float = 10) -> dict[str, Any]:
    """The page's state after it fetched /api/status later than `moment` (time.time())."""
    return wait_page(driver, lambda s: s["updated"] > moment * 1000 and not s["stale"], timeout, "a refresh")


def browser_errors(driver: Any) -> list[str]:
    """Script errors and CSP violations the page logged (favicon and network noise left out)."""
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and e.get("source") != "network"]  # fmt: skip


# --- the service ------------------------------------------------------------------------------
def write_config(tmp: Path, *, netwrix: str | None = None, metrics: str = "", extra: str = "") -> tuple[Path, int]:
    """A service configuration with a fixed metrics port; the in-process emulator unless `netwrix`."""
    port = free_port()
    target = "emulator: true\nemulator_listen: 127.0.0.1:0" if netwrix is None else f"netwrix: {netwrix}"
    path = tmp / "nwsyslog.yaml"
    path.write_text(
        f"""
listeners: [udp://127.0.0.1:0]
{target}
batching: {{linger: 0.1}}
records: {{monitoring_plan: Syslog, item: e2e}}
spool: {{path: {tmp / "spool.db"}}}
metrics: {{listen: "127.0.0.1:{port}"{metrics}}}
shutdown_timeout: 5
{extra}"""
    )
    return path, port


def metrics_figures(port: int, **request: Any) -> dict[str, float]:
    """/metrics's figures for the page's totals (each sample summed over its labels)."""
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10, **request)
    response.raise_for_status()
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            sums[sample.name] = sums.get(sample.name, 0) + sample.value
    return {name: sums.get(metric, 0) for name, metric in TOTALS.items()}


def api_status(port: int, **request: Any) -> dict[str, Any]:
    response = httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=10, **request)
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


def send_udp(port: int, lines: list[bytes], source: str = "127.0.0.1") -> None:
    """Datagrams from `source` (any 127/8 address is this host on Linux)."""
    if source == "127.0.0.1":
        with Sender("udp", "127.0.0.1", port) as sender:
            sender.replay(lines)
        return
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        for line in lines:
            sock.sendto(line, ("127.0.0.1", port))


def settled(port: int, predicate: Callable[[dict[str, float]], bool], what: str) -> dict[str, float]:
    """/metrics's figures once `predicate` holds and they stopped moving (two equal reads 1 s apart)."""
    figures: dict[str, float] = {}

    def check() -> bool:
        nonlocal figures
        first = metrics_figures(port)
        if not predicate(first):
            return False
        time.sleep(1.0)
        figures = metrics_figures(port)
        return figures == first

    wait_for(check, 60, what)
    return figures


def frob_lines(n: int, start: int = 0) -> list[bytes]:
    return [FROB % ((start + i) % 60, USERS[(start + i) % len(USERS)], start + i) for i in range(n)]


def screenshot(driver: Any, udp: int, sudo: list[bytes]) -> None:
    """docs/status-page.png: the page at 1280x900 after a minute of uneven traffic (so that the
    charts have a shape), scrolled to the top."""
    for second in range(70):
        send_udp(udp, sudo[: 2 + (second * 7) % 20] + frob_lines(second % 4, start=100 + second))
        time.sleep(1)
    driver.execute_script("window.scrollTo(0, 0)")
    refreshed_since(driver, time.time())
    SCREENSHOT.parent.mkdir(exist_ok=True)
    driver.save_screenshot(str(SCREENSHOT))


# --- the tests --------------------------------------------------------------------------------
def test_the_page_shows_the_services_figures_and_follows_them(tmp_path: Path, browser: Any) -> None:
    config, port = write_config(tmp_path, extra="accept: [127.0.0.1/32]\n")
    service = ServiceProcess(config)
    try:
        udp = service.ports["udp"]
        sudo = [line for line in (SAMPLES / "sudo-su.log").read_bytes().splitlines() if line.strip()]
        records = expected_records(SAMPLES / "sudo-su.log")
        assert records > 10
        send_udp(udp, sudo + frob_lines(6) + [PROBE])
        send_udp(udp, [b"<13>Dec  2 10:00:00 intruder x: hello"] * 3, source="127.0.0.2")  # refused
        accepted = len(sudo) + 7
        figures = settled(
            port,
            lambda f: f["received"] == accepted and f["refused"] == 3 and f["sent"] == f["records"] == records,
            "every message received and every record sent",
        )
        assert figures["unmatched"] >= 7, figures

        browser.get(f"http://127.0.0.1:{port}/")
        moment = time.time()
        state = refreshed_since(browser, moment)
        # Totals: the page's figures are /metrics's, read at the same moment (nothing moves now).
        assert state["totals"] == figures, (state["totals"], figures)
        assert metrics_figures(port) == figures
        assert state["listeners"] == {f"udp://127.0.0.1:{udp}": accepted}
        assert state["refused"] == {"127.0.0.2": 3}
        assert state["delivery"]["state"] == "running" and state["delivery"]["label"] == "Delivering"
        assert state["ready"]["ok"] == "true", state["ready"]
        assert state["spool"]["depth"] == 0

        # The unmatched inventory: the frobnicator shape, its hosts and samples, its draft rule.
        frob = [s for s in state["shapes"].values() if s["key"] == "frobnicator"]
        assert len(frob) == 1, state["shapes"]
        shape = frob[0]
        assert shape["count"] == 6 and "frobbed widget" in shape["template"] and "web1" in shape["hosts"]
        assert any(b"user alice frobbed widget 0" in s.encode() for s in shape["samples"]), shape
        assert shape["draft"] and "frobnicator" in shape["draft"], shape
        shape_id = next(k for k, v in state["shapes"].items() if v["key"] == "frobnicator")
        api = {s["id"]: s for s in api_status(port)["unmatched"]["shapes"]}
        assert shape["draft"] == api[shape_id]["draft"], "the draft shown is the service's, whole"
        # Its draft unfolds (and stays unfolded across refreshes); copying it works.
        from selenium.webdriver.common.by import By

        element = browser.find_element(By.CSS_SELECTOR, f'[data-shape-id="{shape_id}"]')
        element.find_element(By.TAG_NAME, "summary").click()
        pre = element.find_element(By.CSS_SELECTOR, "pre.shape-draft")
        assert pre.is_displayed() and "frobnicator" in pre.text
        refreshed_since(browser, time.time())
        element = browser.find_element(By.CSS_SELECTOR, f'[data-shape-id="{shape_id}"]')
        assert element.find_element(By.TAG_NAME, "details").get_attribute("open") is not None
        element.find_element(By.CSS_SELECTOR, "button.copy").click()
        wait_for(lambda: element.find_element(By.CSS_SELECTOR, "button.copy").text in ("copied", "select and copy"),
                 5, "the copy button's answer")  # fmt: skip

        # The attacker's line is shown as text: no element made of it, no script run.
        probe = [s for s in state["shapes"].values() if s["key"] == "xssprobe"]
        assert probe and any("<img src=x" in line for line in probe[0]["samples"]), state["shapes"]
        assert state["injected"] == 0 and state["title"] == "nwsyslog status"

        # Charts: rates drawn from the history, which has seen the traffic.
        state = wait_page(
            browser,
            lambda s: all(c["points"] >= 1 for c in s["charts"].values()),
            20,
            "rates for every series",
        )
        assert set(state["charts"]) == {"received", "records", "unmatched", "sent", "retries"}
        peak = browser.find_element(By.ID, "chart-max-received").text
        assert peak.startswith("peak ") and peak != "peak 0/s", peak

        # The page follows: more traffic, and its figures grow to /metrics's new ones.
        send_udp(udp, frob_lines(5, start=6))
        figures = settled(port, lambda f: f["received"] == accepted + 5, "5 more messages")
        state = wait_page(browser, lambda s: s["totals"]["received"] == accepted + 5, 10, "the 5 more messages")
        state = refreshed_since(browser, time.time())
        assert state["totals"] == figures
        assert state["shapes"][shape_id]["count"] == 11
        assert browser_errors(browser) == []
        if os.environ.get("NWSYSLOG_SCREENSHOT") == "1":
            screenshot(browser, udp, sudo)

        # The service gone: the page says its data is stale.
        service.stop()
        state = wait_page(browser, lambda s: s["stale"], 15, "stale data")
        assert "stale" in browser.find_element(By.ID, "stale").text
    finally:
        code, err = service.stop()
    assert code == 0, err


def test_the_page_shows_a_halt_with_its_reason(tmp_path: Path, browser: Any) -> None:
    with EmulatorProcess("--user", "writer:right", "--db", str(tmp_path / "emulator.db")) as emulator:
        netwrix = f"{{url: '{emulator.url}', auth: {{method: basic, username: writer, password: wrong}}}}"
        config, port = write_config(tmp_path, netwrix=netwrix)
        service = ServiceProcess(config)
        try:
            send_udp(service.ports["udp"], [line for line in (SAMPLES / "sudo-su.log").read_bytes().splitlines()
                                            if line.strip()])  # fmt: skip
            records = expected_records(SAMPLES / "sudo-su.log")
            browser.get(f"http://127.0.0.1:{port}/")
            state = wait_page(browser, lambda s: s["delivery"]["state"] == "halted", 30, "the halt")
            state = wait_page(browser, lambda s: s["spool"]["depth"] == records, 15, "every record kept in the spool")
            status = api_status(port)
            assert status["delivery"]["state"] == "halted" and status["delivery"]["reason"]
            assert state["delivery"]["label"] == "Halted"
            assert state["delivery"]["reason"] == status["delivery"]["reason"], "the reason as the service says it"
            assert "401" in state["delivery"]["reason"]
            assert state["delivery"]["since"].startswith("halted since ")
            assert state["ready"]["ok"] == "false" and "halted" in state["ready"]["text"]
            assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 503
            assert state["totals"]["sent"] == 0 and state["totals"]["records"] == records
            assert browser_errors(browser) == []
        finally:
            code, err = service.stop()
    assert code == 0, err


def test_auth_guards_the_whole_listener_but_healthz(tmp_path: Path, browser: Any) -> None:
    token, password = "s3cr3t-token-for-scrapers", "pa:ss w0rd"
    (tmp_path / "token").write_text(token + "\n")
    (tmp_path / "password").write_text(password + "\n")
    basic_auth = f"{{username: ops, password_file: {tmp_path / 'password'}}}"
    metrics = f", auth_token_file: {tmp_path / 'token'}, basic_auth: {basic_auth}"
    config, port = write_config(tmp_path, metrics=metrics)
    service = ServiceProcess(config)
    try:
        base = f"http://127.0.0.1:{port}"
        basic = "Basic " + base64.b64encode(f"ops:{password}".encode()).decode()
        with httpx.Client(base_url=base, timeout=10) as http:
            for path in ("/", "/metrics", "/readyz", "/api/status"):
                for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {token}x"},
                                {"Authorization": "Basic " + base64.b64encode(b"ops:wrong").decode()},
                                {"Authorization": "Basic !!notbase64"}, {"Authorization": token}):  # fmt: skip
                    answer = http.get(path, headers=headers)
                    assert answer.status_code == 401, (path, headers, answer.status_code)
                    assert answer.headers.get_list("www-authenticate") == [
                        'Basic realm="nwsyslog", charset="UTF-8"',
                        'Bearer realm="nwsyslog"',
                    ]
                    assert token not in answer.text and password not in answer.text
                for headers in ({"Authorization": f"Bearer {token}"}, {"Authorization": basic}):
                    assert http.get(path, headers=headers).status_code in (200, 503), (path, headers)
            assert http.get("/healthz").status_code == 200, "probes need no secret"
            assert "nwsyslog_received_total" in http.get("/metrics", headers={"Authorization": f"Bearer {token}"}).text
            assert metrics_figures(port, headers={"Authorization": basic})["received"] == 0
        # A browser given the Basic credentials sees the page and its data.
        browser.get(f"http://ops:{password.replace(':', '%3A').replace(' ', '%20')}@127.0.0.1:{port}/")
        state = wait_page(browser, lambda s: s["loaded"] and not s["stale"], 15, "data under Basic auth")
        assert state["totals"]["received"] == 0
    finally:
        code, err = service.stop()
    assert code == 0, err


def test_metrics_settings_are_checked_and_an_open_listener_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ValidationError, match=r"auth_token_file: .* is empty"):
        MetricsConfig(auth_token_file=empty)
    with pytest.raises(ValidationError, match="auth_token_file: cannot read"):
        MetricsConfig(auth_token_file=tmp_path / "missing")
    with pytest.raises(ValidationError, match=r"password_file: .* is empty"):
        MetricsConfig.model_validate({"basic_auth": {"username": "ops", "password_file": str(empty)}})
    with pytest.raises(ValidationError, match="cannot contain ':'"):
        MetricsConfig.model_validate({"basic_auth": {"username": "a:b", "password_file": str(empty)}})
    token = tmp_path / "token"
    token.write_text("t0ken\n")

    readings = Readings(sources=list, pipeline=lambda: None, spool=lambda: (0, 0, 0, 0, 0),
                        delivery=lambda: None, udp_drops=list)  # fmt: skip
    cases = {
        "127.0.0.1:9102": False,
        "[::1]:9102": False,
        "localhost:9102": False,
        "0.0.0.0:9102": True,
        "[::]:9102": True,
        "192.0.2.10:9102": True,
    }
    for listen, warned in cases.items():
        for settings, expect in (
            (MetricsConfig(listen=listen), warned),
            (MetricsConfig(listen=listen, allow_unauthenticated=True), False),
            (MetricsConfig(listen=listen, auth_token_file=token), False),
        ):
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="nwsyslog.metrics"):
                Metrics(readings).app(settings)
            assert (settings.exposure_warning() is not None) == expect, settings
            assert any("without authentication" in r.getMessage() for r in caplog.records) == expect, settings
