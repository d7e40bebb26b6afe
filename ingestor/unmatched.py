"""The unmatched-message inventory: what the service received that no rule maps, grouped by shape.

A shape is a source kind (`cisco` for a message with a Cisco mnemonic, `syslog` for one with a
program tag, `untagged` for neither), its key (the mnemonic or program) and a template of the
text mined by Drain (`drain3`): the words that vary between messages of the shape become `<*>`.
Each shape keeps counts, first and last seen, up to `max_hosts` sending hosts and, unless
`samples` is off (sites that must not keep message text outside Netwrix), up to `max_samples`
lines as received. `parsers.rules.draft` turns a shape into a rule.

Bounds, whatever the traffic: at most `max_shapes` shapes in all and `max_shapes_per_key` per
key (a message of a key at its bound is matched against the key's shapes and, if none takes it,
only counted in that key's `unshaped`, as is a new key beyond `max_shapes`); the miner sees at
most MINE_CHARS characters of a message; a sample at most SAMPLE_CHARS; and at most
`mine_per_second` messages a second are mined (the rest only counted, `over_budget`), so a
flood of unmatched traffic costs a counter per message. Each key has its own Drain tree, so a
program's messages never merge with another's. `benchmarks/bench_unmatched.py` measures both.

The inventory is a plain object of the listening process; `save`/`load` keep it beside the
spool as JSON (written atomically), so it survives a reload (it is not part of the rule set)
and a restart. Shape ids (`U1`, `U2`, ...) are stable for the file's life: `nwsyslog unmatched`
lists them and `--draft ID` takes them.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drain3.drain import Drain

from parsers.rules.draft import draft_rule
from parsers.syslog import Message

if TYPE_CHECKING:
    from .config import UnmatchedConfig

MINE_CHARS = 1024  # characters of a message's text the miner sees
SAMPLE_CHARS = 1024  # characters kept of a sample line
SIMILARITY = 0.4  # Drain's threshold: share of equal words that puts a message in a shape
DEPTH = 4  # Drain's tree depth (root, length, first word, clusters)
FORMAT_VERSION = 1
KINDS = ("cisco", "syslog", "untagged")


def kind_of(message: Message) -> tuple[str, str]:
    """A message's source kind and key (mnemonic, program, or "")."""
    if message.mnemonic:
        return "cisco", message.mnemonic
    if message.program:
        return "syslog", message.program
    return "untagged", ""


def iso(moment: float) -> str:
    """Epoch seconds as an ISO 8601 UTC time to the second."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Shape:
    """One shape of unmatched messages."""

    id: str
    kind: str
    key: str
    template: str
    count: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0
    hosts: list[str] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The JSON form (times as ISO strings) that `nwsyslog unmatched` and the status page show."""
        return {
            "id": self.id,
            "kind": self.kind,
            "key": self.key,
            "template": self.template,
            "count": self.count,
            "first_seen": iso(self.first_seen),
            "last_seen": iso(self.last_seen),
            "hosts": list(self.hosts),
            "samples": list(self.samples),
        }

    def draft(self, samples: bool = True) -> str:
        """A rule file drafted for this shape (`parsers.rules.draft`); without `samples`, from
        its template alone."""
        return draft_rule(
            shape_id=self.id,
            kind=self.kind,
            key=self.key,
            template=self.template,
            samples=self.samples if samples else (),
            count=self.count,
            hosts=self.hosts,
        )


@dataclass
class _Group:
    """The shapes of one (kind, key), with their Drain tree."""

    drain: Drain
    shapes: dict[int, Shape] = field(default_factory=dict)  # Drain cluster id -> shape
    unshaped: int = 0  # messages counted beyond the shape bounds


class Inventory:
    """See the module docstring. Not thread-safe (the listening process's loop owns it)."""

    def __init__(
        self,
        *,
        samples: bool = True,
        max_shapes: int = 1000,
        max_shapes_per_key: int = 50,
        max_samples: int = 3,
        max_hosts: int = 5,
        mine_per_second: int = 5000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.samples = samples
        self.max_shapes = max_shapes
        self.max_shapes_per_key = max_shapes_per_key
        self.max_samples = max_samples if samples else 0
        self.max_hosts = max_hosts
        self._clock = clock
        self._groups: dict[tuple[str, str], _Group] = {}
        self._by_id: dict[str, Shape] = {}
        self._next_id = 1
        self.total = 0  # unmatched messages counted
        self.unshaped = 0  # of those, counted beyond the bounds (in no shape)
        # The miner's cost bound: at most this many messages a second are mined; the rest are
        # counted (`over_budget`) but put in no shape, so a flood of unmatched traffic costs
        # a counter, not a template search, per message.
        self.mine_per_second = mine_per_second
        self.over_budget = 0
        self._second = 0
        self._mined = 0
        self.changed = False  # since the last save

    @classmethod
    def from_settings(cls, settings: UnmatchedConfig) -> Inventory:
        """An inventory with the configuration's bounds (`unmatched:`)."""
        return cls(
            samples=settings.samples,
            max_shapes=settings.max_shapes,
            max_samples=settings.max_samples,
            max_hosts=settings.max_hosts,
            mine_per_second=settings.mine_per_second,
        )

    def __len__(self) -> int:
        return len(self._by_id)

    def _group(self, kind: str, key: str) -> _Group:
        group = self._groups.get((kind, key))
        if group is None:
            group = self._groups[(kind, key)] = _Group(Drain(depth=DEPTH, sim_th=SIMILARITY, max_children=100))
        return group

    def add(
        self, message: Message, raw: bytes | str | None = None, at: float | None = None, *, budget: bool = True
    ) -> Shape | None:
        """Count one unmatched message (`raw`: the line as received, kept as a sample; `at`: when
        it happened, default now); returns its shape, or None when the bounds left it in none.
        `budget`: within `mine_per_second` (of this process's clock, whatever `at` says); off
        for an analysis that wants every line mined (`mine`)."""
        kind, key = kind_of(message)
        return self.add_parts(kind, key, message.text, message.host, raw, at, budget=budget)

    def add_parts(
        self,
        kind: str,
        key: str,
        text: str,
        host: str,
        raw: bytes | str | None = None,
        at: float | None = None,
        *,
        budget: bool = True,
    ) -> Shape | None:
        """`add` for a message already reduced to its kind and key (`kind_of`), text and host
        (an import's worker process sends these)."""
        self.total += 1
        self.changed = True
        clock = self._clock() if at is None or budget else 0.0
        now = clock if at is None else at
        if budget:
            second = int(clock)
            if second != self._second:
                self._second, self._mined = second, 0
            if self._mined >= self.mine_per_second:
                self.over_budget += 1
                return None
            self._mined += 1
        text = text[:MINE_CHARS]
        group = self._groups.get((kind, key))
        if group is None and len(self._by_id) >= self.max_shapes:
            self.unshaped += 1
            return None
        group = group or self._group(kind, key)
        full = len(group.shapes) >= self.max_shapes_per_key or len(self._by_id) >= self.max_shapes
        if full:
            cluster, changed = _join_existing(group.drain, text)
            shape = group.shapes.get(cluster.cluster_id) if cluster is not None else None
            if shape is not None and changed:
                shape.template = cluster.get_template()
        else:
            cluster, change = group.drain.add_log_message(text)
            shape = group.shapes.get(cluster.cluster_id)
            if shape is None:
                shape = Shape(f"U{self._next_id}", kind, key, cluster.get_template(), first_seen=now)
                self._next_id += 1
                group.shapes[cluster.cluster_id] = shape
                self._by_id[shape.id] = shape
            elif change != "none":
                shape.template = cluster.get_template()
        if shape is None:
            group.unshaped += 1
            self.unshaped += 1
            return None
        shape.count += 1
        shape.first_seen = min(shape.first_seen, now)
        shape.last_seen = max(shape.last_seen, now)
        if host and len(shape.hosts) < self.max_hosts and host not in shape.hosts:
            shape.hosts.append(host)
        if raw is not None and len(shape.samples) < self.max_samples:
            line = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            line = line.rstrip("\r\n")[:SAMPLE_CHARS]
            if line not in shape.samples:
                shape.samples.append(line)
        return shape

    def shapes(self) -> list[Shape]:
        """Every shape, most frequent first."""
        return sorted(self._by_id.values(), key=lambda s: (-s.count, s.id))

    def get(self, shape_id: str) -> Shape | None:
        """The shape with this id (any casing), or None."""
        return self._by_id.get(shape_id.upper())

    def forget(self, keep: Callable[[Shape], bool]) -> list[Shape]:
        """Remove the shapes `keep` refuses (after a reload: those the new rules now map);
        returns them."""
        gone = [s for s in self._by_id.values() if not keep(s)]
        for shape in gone:
            del self._by_id[shape.id]
            group = self._groups[(shape.kind, shape.key)]
            for cid, s in list(group.shapes.items()):
                if s is shape:
                    del group.shapes[cid]
        if gone:
            self.changed = True
        return gone

    def as_json(self, limit: int | None = None, *, drafts: bool = False) -> dict[str, Any]:
        """The inventory for `nwsyslog unmatched` and the status page (most frequent first);
        with `drafts`, each shape with its drafted rule (and `samples` null when the site keeps
        none)."""
        shapes = self.shapes()
        shown = []
        for shape in shapes if limit is None else shapes[:limit]:
            data = shape.as_json()
            if drafts:
                data["draft"] = shape.draft(self.samples)
                if not self.samples:
                    data["samples"] = None
            shown.append(data)
        return {
            "total": self.total,
            "unshaped": self.unshaped,
            "over_budget": self.over_budget,
            "shapes_total": len(shapes),
            "samples_allowed": self.samples,
            "shapes": shown,
        }

    # --- persistence ------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        """Everything needed to rebuild the inventory (`restore`)."""
        return {
            "version": FORMAT_VERSION,
            "next_id": self._next_id,
            "total": self.total,
            "unshaped": self.unshaped,
            "over_budget": self.over_budget,
            "groups": [
                {
                    "kind": kind,
                    "key": key,
                    "unshaped": group.unshaped,
                    "shapes": [
                        {
                            "id": s.id,
                            "template": s.template,
                            "count": s.count,
                            "first_seen": s.first_seen,
                            "last_seen": s.last_seen,
                            "hosts": s.hosts,
                            "samples": s.samples,
                        }
                        for s in group.shapes.values()
                    ],
                }
                for (kind, key), group in self._groups.items()
            ],
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Take in a `dump()`. Each shape's template is fed to a new Drain tree, which makes it a
        cluster again (two that the tree now merges become one shape). Samples are dropped when
        this inventory keeps none."""
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"unknown inventory format {data.get('version')!r}")
        self._next_id = max(self._next_id, int(data["next_id"]))
        self.total += int(data["total"])
        self.unshaped += int(data["unshaped"])
        self.over_budget += int(data.get("over_budget", 0))
        for g in data["groups"]:
            group = self._group(str(g["kind"]), str(g["key"]))
            group.unshaped += int(g["unshaped"])
            for s in g["shapes"]:
                cluster, _ = group.drain.add_log_message(str(s["template"]))
                shape = group.shapes.get(cluster.cluster_id)
                if shape is None:
                    shape = Shape(str(s["id"]), str(g["kind"]), str(g["key"]), cluster.get_template())
                    shape.first_seen = float(s["first_seen"])
                    group.shapes[cluster.cluster_id] = shape
                    self._by_id[shape.id] = shape
                shape.count += int(s["count"])
                shape.first_seen = min(shape.first_seen, float(s["first_seen"]))
                shape.last_seen = max(shape.last_seen, float(s["last_seen"]))
                for host in s["hosts"]:
                    if host not in shape.hosts and len(shape.hosts) < self.max_hosts:
                        shape.hosts.append(str(host))
                for line in s["samples"] if self.samples else ():
                    if line not in shape.samples and len(shape.samples) < self.max_samples:
                        shape.samples.append(str(line))

    def save(self, path: Path) -> None:
        """Write the inventory to `path` atomically (a temporary file renamed over it), 0600."""
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.dump(), f, ensure_ascii=False, separators=(",", ":"))
        os.replace(tmp, path)
        self.changed = False

    def load(self, path: Path) -> bool:
        """Take in what `save` wrote, if the file exists; returns whether it did. A damaged file
        is set aside (`.damaged`) rather than trusted: the inventory is advice, never records."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return False
        try:
            self.restore(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            with contextlib.suppress(OSError):
                path.replace(path.with_name(path.name + ".damaged"))
            raise ValueError(f"{path}: not an unmatched inventory ({exc}); moved aside") from None
        return True


def _join_existing(drain: Drain, text: str) -> tuple[Any, bool]:
    """Drain's `add_log_message` without making a new cluster (for a key at its bound): the
    message joins (and may generalize) the most similar cluster, or none. Uses Drain's own steps
    (drain3 0.9's tree search and template merge), so a bound changes only what is created.
    Returns the cluster (or None) and whether its template changed."""
    tokens = drain.get_content_as_tokens(text)
    cluster = drain.tree_search(drain.root_node, tokens, drain.sim_th, False)
    if cluster is None:
        return None, False
    cluster.size += 1
    template = tuple(drain.create_template(tokens, cluster.log_template_tokens))
    if template == cluster.log_template_tokens:
        return cluster, False
    cluster.log_template_tokens = template
    return cluster, True


def inventory_path(spool_path: Path) -> Path:
    """Where the inventory of the spool at `spool_path` is kept (beside it)."""
    return spool_path.with_name(spool_path.name + ".unmatched.json")


def mine(messages: Iterable[tuple[Message, bytes | str]], inventory: Inventory | None = None) -> Inventory:
    """An inventory of `messages` (each with its raw line), e.g. the unmatched lines of a file,
    each seen at its own time (else when it was read), every one mined (no budget)."""
    inventory = inventory if inventory is not None else Inventory()
    for message, raw in messages:
        stamp = message.timestamp or message.received_at
        inventory.add(message, raw, stamp.timestamp(), budget=False)
    return inventory


def format_listing(data: dict[str, Any], *, samples: bool = True, limit: int | None = None) -> str:
    """The inventory's JSON (`Inventory.as_json`, `/api/unmatched`) as the table `nwsyslog
    unmatched` prints: most frequent first, each shape with its samples under it."""
    shapes = data.get("shapes") or []
    shown = shapes if limit is None else shapes[:limit]
    rows = [("ID", "COUNT", "KIND", "KEY", "LAST SEEN", "HOSTS", "TEMPLATE")]
    for s in shown:
        hosts = list(s.get("hosts") or [])
        rows.append(
            (
                str(s["id"]),
                f"{s['count']:,}",
                str(s["kind"]),
                str(s["key"] or "-"),
                str(s["last_seen"]),
                ",".join(hosts[:3]) + (f",+{len(hosts) - 3}" if len(hosts) > 3 else "") or "-",
                str(s["template"]),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[i].rjust(widths[i]) if i == 1 else row[i].ljust(widths[i]) for i in range(6)]
        lines.append("  ".join([*cells, row[6]]).rstrip())
        if index and samples:
            lines.extend(f"    e.g. {line}" for line in shown[index - 1].get("samples") or [])
    total, count = int(data.get("total", 0)), int(data.get("shapes_total", len(shapes)))
    beyond, over = int(data.get("unshaped", 0)), int(data.get("over_budget", 0))
    summary = f"{total:,} unmatched messages in {count:,} shapes"
    if beyond:
        summary += f"; {beyond:,} counted beyond the inventory's bounds (unmatched.max_shapes), in no shape"
    if over:
        summary += f"; {over:,} counted over the miner's budget (unmatched.mine_per_second), in no shape"
    if len(shown) < count:
        summary += f"; the {len(shown)} most frequent shown"
    if count:
        summary += "\n`nwsyslog unmatched --draft ID` drafts a rule for a shape"
    out = [*lines, summary] if shown else [summary]
    refused = data.get("refused") or []
    if refused:
        out.append("")
        out.append("Senders refused by the accept list (their messages are not in the inventory):")
        table = [("SOURCE", "COUNT", "LAST SEEN", "LISTENER")]
        table += [(str(r["source"]), f"{r['count']:,}", str(r["last_seen"]), str(r["listener"])) for r in refused]
        widths = [max(len(row[i]) for row in table) for i in range(3)]
        out.extend(
            "  ".join([row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].ljust(widths[2]), row[3]])
            for row in table
        )
    return "\n".join(out)
