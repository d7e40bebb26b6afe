"""Write openssh-server.log: sshd and pam_unix lines of our own, shaped by the programs' format strings.

    python3 tests/corpus/nwsyslog/make_openssh_server.py

A stand-in for a busy SSH server's auth log (logins, brute force, scanners, disconnects), written
for this project so that it can be redistributed with it. Every message shape below is the text
of a log call in OpenSSH portable 9.x (`auth.c` auth_log() and auth_maxtries_exceeded(),
`auth2.c` input_userauth_request(), `sshd.c`, `canohost.c`/`auth2-pubkey.c`, `packet.c`
ssh_packet_disconnect() and sshpkt_fmt_connection_id(), `kex.c` "Unable to negotiate",
`auth-pam.c` "PAM %d more authentication failure%s") or of Linux-PAM's `pam_unix`
(`pam_unix_auth.c`, `pam_unix_sess.c`, `support.c` "check pass; user unknown"), filled with
documentation addresses (RFC 5737, RFC 3849) and invented names. The output is deterministic.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

OUT = Path(__file__).with_name("openssh-server.log")
HOST = "bastion1"
USERS = ["alice", "bob", "carol", "deploy", "backup", "git"]
GUESSES = ["admin", "test", "oracle", "postgres", "ubuntu", "pi", "user", "guest", "ftpuser", "support"]
NETS = ["192.0.2.", "198.51.100.", "203.0.113."]


def address(rng: random.Random) -> str:
    if rng.random() < 0.08:
        return f"2001:db8::{rng.randrange(1, 0xFFFF):x}"
    return rng.choice(NETS) + str(rng.randrange(1, 255))


def key(rng: random.Random) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    return "".join(rng.choice(alphabet) for _ in range(43))


def session(rng: random.Random, user: str, ip: str, port: int, method: str) -> list[str]:
    uid = 1000 + USERS.index(user)
    opened = rng.choice(
        [f"session opened for user {user}(uid={uid}) by (uid=0)", f"session opened for user {user} by (uid=0)"]
    )
    accepted = f"Accepted {method} for {user} from {ip} port {port} ssh2"
    if method == "publickey":
        accepted += f": {rng.choice(['RSA', 'ED25519', 'ECDSA'])} SHA256:{key(rng)}"
    return [
        accepted,
        f"pam_unix(sshd:session): {opened}",
        f"Received disconnect from {ip} port {port}:11: disconnected by user",
        f"Disconnected from user {user} {ip} port {port}",
        f"pam_unix(sshd:session): session closed for user {user}",
    ]


def brute_force(rng: random.Random, ip: str, port: int) -> list[str]:
    lines: list[str] = []
    if rng.random() < 0.5:
        user = rng.choice(GUESSES)
        lines += [
            f"Invalid user {user} from {ip} port {port}",
            "pam_unix(sshd:auth): check pass; user unknown",
            f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}",
            f"Failed password for invalid user {user} from {ip} port {port} ssh2",
            f"Received disconnect from {ip} port {port}:11: Bye Bye [preauth]",
            f"Disconnected from invalid user {user} {ip} port {port} [preauth]",
        ]
    else:
        tries = rng.randrange(1, 7)
        lines.append(
            f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user=root"
        )
        lines += [f"Failed password for root from {ip} port {port} ssh2"] * tries
        if tries == 6:
            lines += [
                f"error: maximum authentication attempts exceeded for root from {ip} port {port} ssh2 [preauth]",
                f"Disconnecting authenticating user root {ip} port {port}: Too many authentication failures [preauth]",
                f"PAM 5 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user=root",
            ]
        else:
            lines.append(f"Connection closed by authenticating user root {ip} port {port} [preauth]")
    return lines


def noise(rng: random.Random, ip: str, port: int) -> list[str]:
    name = f"host-{ip.replace('.', '-').replace(':', '-')}.example.net"
    return [
        rng.choice(
            [
                f"Did not receive identification string from {ip} port {port}",
                f"Connection closed by {ip} port {port} [preauth]",
                f"Connection reset by {ip} port {port} [preauth]",
                f"Bad protocol version identification 'GET / HTTP/1.1' from {ip} port {port}",
                f"Unable to negotiate with {ip} port {port}: no matching key exchange method found. "
                "Their offer: diffie-hellman-group1-sha1 [preauth]",
                f"reverse mapping checking getaddrinfo for {name} [{ip}] failed - POSSIBLE BREAK-IN ATTEMPT!",
                f"Address {ip} maps to {name}, but this does not map back to the address.",
                f"User root from {ip} not allowed because not listed in AllowUsers",
                "error: kex_exchange_identification: Connection closed by remote host",
                f"fatal: Timeout before authentication for {ip} port {port}",
            ]
        )
    ]


def main() -> None:
    rng = random.Random(20261201)
    when = datetime(2026, 3, 2, 6, 25, 0)
    out: list[str] = []
    pid = 4100
    for _ in range(260):
        ip, port = address(rng), rng.randrange(1024, 65535)
        roll = rng.random()
        if roll < 0.25:
            messages = session(rng, rng.choice(USERS), ip, port, rng.choice(["password", "publickey"]))
        elif roll < 0.75:
            messages = brute_force(rng, ip, port)
        else:
            messages = noise(rng, ip, port)
        pid += rng.randrange(1, 40)
        for message in messages:
            when += timedelta(seconds=rng.randrange(0, 4))
            out.append(f"{when:%b} {when.day:2d} {when:%H:%M:%S} {HOST} sshd[{pid}]: {message}")
    OUT.write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
