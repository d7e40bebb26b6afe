"""The unmatched inventory (`ingestor.unmatched`) and the rules it drafts (`parsers.rules.draft`)."""

from __future__ import annotations

import json
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ingestor.unmatched import Inventory, format_listing, inventory_path, mine
from parsers.rules.loader import load_packs, load_ruleset
from parsers.rules.testing import ExplainOptions, Report, check_examples, explain
from parsers.syslog import parse_syslog

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


def message(line: str | bytes) -> tuple[object, bytes]:
    raw = line.encode() if isinstance(line, str) else line
    return parse_syslog(raw, received_at=NOW), raw


def add(inventory: Inventory, *lines: str) -> None:
    for line in lines:
        m, raw = message(line)
        inventory.add(m, raw)  # type: ignore[arg-type]


def test_messages_are_grouped_by_kind_key_and_template_with_counts_hosts_and_samples() -> None:
    inventory = Inventory(max_samples=2, max_hosts=2)
    add(
        inventory,
        "<13>Dec  2 10:00:01 web1 myapp[1]: user alice did 4 things",
        "<13>Dec  2 10:00:02 web2 myapp[1]: user bob did 5 things",
        "<13>Dec  2 10:00:03 web3 myapp[1]: user carol did 6 things",
        "<13>Dec  2 10:00:04 web1 other[1]: user alice did 4 things",
        "<189>1: *Mar  1 00:00:00.000: %FOO-5-BAR: Interface Gi0/1 changed",
    )
    shapes = {(s.kind, s.key): s for s in inventory.shapes()}
    assert set(shapes) == {("syslog", "myapp"), ("syslog", "other"), ("cisco", "FOO-5-BAR")}
    mine_ = shapes[("syslog", "myapp")]
    assert (mine_.count, mine_.template) == (3, "user <*> did <*> things")
    assert mine_.hosts == ["web1", "web2"]  # bounded
    assert len(mine_.samples) == 2 and mine_.samples[0].endswith("user alice did 4 things")
    assert inventory.shapes()[0] is mine_  # most frequent first
    assert inventory.total == 5 and inventory.unshaped == 0


def test_with_samples_off_no_message_text_is_kept_anywhere(tmp_path: Path) -> None:
    inventory = Inventory(samples=False)
    add(inventory, "<13>Dec  2 10:00:01 web1 myapp[1]: secret token abc123 for alice")
    assert all(not s.samples for s in inventory.shapes())
    path = tmp_path / "inv.json"
    inventory.save(path)
    assert "alice" not in json.loads(path.read_text())["groups"][0]["shapes"][0]["samples"]


def test_the_bounds_hold_however_many_shapes_arrive_and_the_rest_is_counted() -> None:
    inventory = Inventory(max_shapes=5, max_shapes_per_key=3)
    for i in range(40):
        # Each program its own key; each length its own shape (Drain groups by word count).
        add(inventory, f"<13>Dec  2 10:00:01 h app{i % 4}[1]: " + " ".join(["word"] * (i % 10 + 1)))
    assert len(inventory) == 5
    per_key: dict[str, int] = {}
    for shape in inventory.shapes():
        per_key[shape.key] = per_key.get(shape.key, 0) + 1
    assert max(per_key.values()) <= 3
    assert inventory.total == 40
    assert sum(s.count for s in inventory.shapes()) + inventory.unshaped == 40
    assert inventory.unshaped > 0


def test_a_message_of_a_full_key_still_counts_on_its_existing_shape() -> None:
    inventory = Inventory(max_shapes=1)
    add(inventory, "<13>Dec  2 10:00:01 h app[1]: user alice logged in")
    add(inventory, "<13>Dec  2 10:00:01 h app[1]: user bob logged in")  # same shape: counted
    add(inventory, "<13>Dec  2 10:00:01 h app[1]: something else entirely here now")  # new: beyond
    [shape] = inventory.shapes()
    assert shape.count == 2 and inventory.unshaped == 1


def test_save_and_load_keep_ids_counts_and_times_and_a_damaged_file_is_set_aside(tmp_path: Path) -> None:
    inventory = Inventory()
    add(
        inventory,
        "<13>Dec  2 10:00:01 web1 myapp[1]: user alice did 4 things",
        "<13>Dec  2 10:00:02 web2 myapp[1]: user bob did 5 things",
        "<13>Dec  2 10:00:04 web1 other[1]: started",
    )
    path = inventory_path(tmp_path / "spool.db")
    assert path.name == "spool.db.unmatched.json"
    inventory.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    again = Inventory()
    assert again.load(path)
    assert [s.as_json() for s in again.shapes()] == [s.as_json() for s in inventory.shapes()]
    add(again, "<13>Dec  2 10:00:05 web3 myapp[1]: user carol did 6 things")  # joins its old shape
    assert again.get("u1") is not None and again.get("U1").count == 3  # type: ignore[union-attr]
    add(again, "<13>Dec  2 10:00:05 web3 third[1]: new one")
    assert {s.id for s in again.shapes()} == {"U1", "U2", "U3"}  # new ids never reuse old ones

    path.write_text("{not json")
    fresh = Inventory()
    try:
        fresh.load(path)
    except ValueError as exc:
        assert "moved aside" in str(exc)
    else:
        raise AssertionError("a damaged inventory was taken in")
    assert not path.exists() and path.with_name(path.name + ".damaged").exists()
    assert not Inventory().load(path)  # none now: an empty start


def test_forget_removes_the_shapes_a_reload_maps() -> None:
    inventory = Inventory()
    add(inventory, "<13>Dec  2 10:00:01 web1 myapp[1]: x y", "<13>Dec  2 10:00:01 web1 keep[1]: a b")
    gone = inventory.forget(lambda s: s.key == "keep")
    assert [s.key for s in gone] == ["myapp"] and [s.key for s in inventory.shapes()] == ["keep"]


def test_mine_counts_a_files_lines_at_their_own_time() -> None:
    inventory = mine([message("<13>Mar  4 10:00:01 web1 myapp[1]: hello")])  # type: ignore[list-item]
    [shape] = inventory.shapes()
    assert shape.as_json()["last_seen"] == "2026-03-04T10:00:01Z"


def test_the_listing_shows_counts_samples_and_a_summary() -> None:
    inventory = Inventory()
    add(inventory, "<13>Dec  2 10:00:01 web1 myapp[1]: user alice did 4 things")
    text = format_listing(inventory.as_json())
    assert re.search(r"^U1\s+1\s+syslog\s+myapp\s+\S+\s+web1\s+user alice did 4 things$", text, re.M)
    assert "    e.g. <13>Dec  2 10:00:01 web1 myapp[1]: user alice did 4 things" in text
    assert "1 unmatched messages in 1 shapes" in text
    assert "samples" not in format_listing(Inventory(samples=False).as_json())


def fill(draft: str) -> str:
    return (
        draft.replace("Action: TODO", "Action: Read")
        .replace("ObjectType: TODO", "ObjectType: Thing")
        .replace("'TODO: what this event is'", "A thing")
    )


def drafted(tmp_path: Path, inventory: Inventory) -> Path:
    text = inventory.shapes()[0].draft()
    folder = tmp_path / "drafts"
    folder.mkdir(exist_ok=True)
    path = folder / "draft.yaml"
    path.write_text(fill(text))
    return path


def test_a_draft_names_its_groups_after_the_words_around_them(tmp_path: Path) -> None:
    inventory = Inventory()
    add(
        inventory,
        "<13>Dec  2 10:00:01 web1 vpnd[1]: login for alice from 192.0.2.7 port 5000 (uid=1000)",
        "<13>Dec  2 10:00:02 web1 vpnd[1]: login for bob from 192.0.2.8 port 5001 (uid=1001)",
    )
    text = drafted(tmp_path, inventory).read_text()
    assert r"(?P<user>\S+)" in text and r"(?P<address>\S+)" in text and r"(?P<port>\S+)" in text
    assert r"\(uid=(?P<uid>\S+?)\)" in text  # the shared punctuation stays literal
    assert "Who: '{user}'" in text and "Workstation: '{address}'" in text
    assert "program: 'vpnd'" in text


def test_a_cisco_draft_matches_on_the_mnemonic(tmp_path: Path) -> None:
    inventory = Inventory()
    add(
        inventory,
        "<189>1: *Mar  1 00:00:00.000: %FOO-5-BAR: Interface Gi0/1 changed by admin",
        "<189>2: *Mar  1 00:00:01.000: %FOO-5-BAR: Interface Gi0/2 changed by oper",
    )
    path = drafted(tmp_path, inventory)
    assert "mnemonic: 'FOO-5-BAR'" in path.read_text()
    ruleset = load_ruleset([path.parent])
    result = explain(ruleset, "<189>3: *Mar  1 00:00:02.000: %FOO-5-BAR: Interface Gi0/3 changed by eve", 1,
                     ExplainOptions())  # fmt: skip
    assert result["record"]["Who"] == "eve"


WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
VALUES = st.one_of(
    WORDS,
    st.integers(0, 99999).map(str),
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))),
    st.builds(lambda k, v: f"{k}={v}", WORDS, WORDS),
    st.builds(lambda v: f"({v})", WORDS),
    st.text(alphabet="ab.*+?()[]{}|^$\\-:%'\"", min_size=1, max_size=6),
)


@settings(max_examples=40, deadline=None)
@given(
    program=st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True),
    pattern=st.lists(st.one_of(WORDS.map(lambda w: ("lit", w)), st.just(("var", ""))), min_size=1, max_size=8),
    rows=st.lists(st.lists(VALUES, min_size=8, max_size=8), min_size=1, max_size=3),
)
def test_any_drafted_rule_once_filled_loads_passes_its_examples_and_maps_its_samples(
    program: str, pattern: list[tuple[str, str]], rows: list[list[str]]
) -> None:
    inventory = Inventory()
    lines = []
    for row in rows:
        words = [w if kind == "lit" else row[i] for i, (kind, w) in enumerate(pattern)]
        lines.append(f"<13>Dec  2 10:00:01 host {program}[1]: {' '.join(words)}")
    add(inventory, *lines)
    with tempfile.TemporaryDirectory() as tmp:
        for shape in inventory.shapes():
            folder = Path(tmp) / shape.id
            folder.mkdir()
            text = shape.draft()
            (folder / "draft.yaml").write_text(fill(text))
            ruleset = load_ruleset([folder], builtin=False)
            report = Report()
            for pack in load_packs([folder]):
                check_examples(pack, ruleset, report)
            assert report.ok, "\n".join(map(str, report.failures)) + "\n" + text
            for line in shape.samples:
                assert "record" in explain(ruleset, line, 1, ExplainOptions()), (line, text)


def test_beyond_its_budget_a_second_the_miner_only_counts() -> None:
    now = [1000.0]
    inventory = Inventory(mine_per_second=3, clock=lambda: now[0])
    for i in range(5):
        add(inventory, f"<13>Dec  2 10:00:01 h app[1]: user u{i} logged in")
    assert (inventory.total, inventory.over_budget, inventory.shapes()[0].count) == (5, 2, 3)
    now[0] += 1.0  # a new second: mined again
    add(inventory, "<13>Dec  2 10:00:01 h app[1]: user z logged in")
    assert inventory.shapes()[0].count == 4
    assert "2 counted over the miner's budget" in format_listing(inventory.as_json())


def test_the_listing_names_the_senders_the_accept_list_refused() -> None:
    data = {
        **Inventory().as_json(),
        "refused": [
            {"listener": "udp://0.0.0.0:514", "source": "192.0.2.7", "count": 1234, "last_seen": "2026-12-02T10:00:00Z"}
        ],
    }
    text = format_listing(data)
    assert "Senders refused by the accept list" in text
    assert re.search(r"^192\.0\.2\.7\s+1,234\s+2026-12-02T10:00:00Z\s+udp://0\.0\.0\.0:514$", text, re.M)
