"""Write tests/corpus/non-events.tsv: the corpus lines that are not audit events, by family.

    python3 tests/corpus/nwsyslog/list_non_events.py

Each family is a kind of message an auditor does not want as an Activity Record (scanner noise,
summaries of lines already recorded, disconnects naming only an address, service sessions,
network telemetry): the precision guard (`tests/rules/test_precision.py`) checks that every
listed line makes no record under the built-in packs' default set. The list names lines by
file and line number, so the third-party text stays in the corpus under its own license.
Review a change to the families like a change to a golden log.
"""

from __future__ import annotations

import re
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent
OUT = CORPUS / "non-events.tsv"

# (family, pattern searched in the line). The first matching family names the line.
FAMILIES: list[tuple[str, str]] = [
    ("pam-check-pass", r"check pass; user unknown"),
    ("pam-summary", r"\bPAM \d+ more authentication failures?;|\)\[\d+\]: \d+ more authentication failures?;"),
    ("sshd-no-identification", r"sshd.*Did not receive identification string"),
    ("sshd-bad-protocol", r"sshd.*Bad protocol version identification"),
    ("sshd-kex", r"sshd.*(?:kex_exchange_identification|Unable to negotiate with|banner exchange)"),
    (
        "sshd-disconnect",
        r"sshd\[\d+\]: (?:Connection (?:closed|reset) by|Received disconnect from"
        r"|Disconnected from (?:invalid|authenticating) user)",
    ),
    ("sshd-break-in", r"sshd.*(?:POSSIBLE BREAK-?IN ATTEMPT|but this does not map back to the address)"),
    ("sshd-host-key", r"sshd.*Could not load host key"),
    ("sshd-listening", r"sshd\[\d+\]: (?:Server listening on|Received signal \d+; terminating)"),
    ("cron-pam-session", r"pam_unix\((?:cron|crond|atd|systemd-user):session\)"),
    ("cisco-acl-hit", r"%(?:SEC-6-IPACCESSLOG|IPV6_ACL-6-ACCESSLOG)"),
    ("cisco-ips", r"%IPS-4-SIGNATURE"),
    ("cisco-ssh-state", r"%SSH-5-(?:ENABLED|DISABLED)"),
    ("cisco-ssh-kex", r"%SSH-5-SSH2?_SESSION: SSH2? Session request from"),
    ("asa-ssh-no-user", r"%(?:ASA|PIX|FWSM)-6-315011: +SSH session from .* for user (\"|')(?:\*+|Unknown)?\1 "),
    ("cisco-fw-session-start", r"%FW-6-SESS_AUDIT_TRAIL_START|SESS_AUDIT_TRAIL: .*Start \S+ session"),
    ("cisco-boot-config", r"%SYS-5-CONFIG_I: Configured from memory by console\s*$"),
    (
        "shadow-gshadow-echo",
        r"(?:group added to /etc/gshadow: |(?:add|delete) '[^']+' (?:to|from) shadow group |removed shadow group )",
    ),
]
COMPILED = [(family, re.compile(pattern)) for family, pattern in FAMILIES]


def main() -> None:
    rows = []
    for path in sorted(CORPUS.rglob("*.log")):
        for number, raw in enumerate(path.read_bytes().splitlines(), 1):
            line = raw.decode("utf-8", "replace")
            family = next((name for name, pattern in COMPILED if pattern.search(line)), None)
            if family is not None:
                rows.append(f"{path.relative_to(CORPUS).as_posix()}\t{number}\t{family}")
    OUT.write_text("file\tline\tfamily\n" + "".join(row + "\n" for row in rows))
    print(f"{len(rows)} non-event lines in {OUT}")


if __name__ == "__main__":
    main()
