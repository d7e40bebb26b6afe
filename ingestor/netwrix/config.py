"""Configuration models of the output half: where and how to write Activity Records (pydantic v2,
frozen, unknown keys rejected); their defaults live here only."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from .encoding import Format

_STRICT = ConfigDict(frozen=True, extra="forbid")

DEFAULT_WRITE_PATH = "/netwrix/api/v1/activity_records/"
# Netwrix recommends at most 50 MB and 1,000 records per write; stay well under the bytes.
DEFAULT_MAX_BATCH_BYTES = 10_000_000
DEFAULT_MAX_BATCH_RECORDS = 1_000


class AuthConfig(BaseModel):
    """How to authenticate to the Integration API. The account needs the Contributor role."""

    model_config = _STRICT

    # auto: what the server's 401 offers (NTLM, then Digest, then Basic); Netwrix recommends NTLM.
    method: Literal["auto", "none", "basic", "digest", "ntlm"] = "auto"
    username: str = ""
    password: SecretStr = SecretStr("")
    # Where the password really comes from, so that it is never written in the file itself.
    password_env: str | None = Field(None, description="name of an environment variable holding the password")
    password_file: Path | None = Field(None, description="file holding the password (first line)")

    @field_validator("password_file")
    @classmethod
    def _password_file_readable(cls, value: Path | None) -> Path | None:
        # A field check, so that it is reported with the other errors of the file, not after them.
        if value is not None:
            try:
                lines = value.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ValueError(f"cannot read {value}: {exc.strerror}") from None
            if not lines or not lines[0].strip():
                raise ValueError(f"{value} is empty (the password is its first line)")
        return value

    @model_validator(mode="after")
    def _needs_user(self) -> Self:
        if self.method != "none" and not self.username:
            raise ValueError(f"auth method {self.method!r} needs a username")
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("give password_env or password_file, not both")
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ValueError(f"password_env: the environment variable {self.password_env} is not set")
            object.__setattr__(self, "password", SecretStr(value))
        elif self.password_file is not None:
            try:
                lines = self.password_file.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ValueError(f"password_file: cannot read {self.password_file}: {exc.strerror}") from None
            object.__setattr__(self, "password", SecretStr(lines[0] if lines else ""))
        return self


_HEX = re.compile(r"[0-9a-f]+")


class TlsConfig(BaseModel):
    """How to trust the server's certificate.

    `system` (default) checks against the system trust store, `ca_file` against a PEM bundle,
    `thumbprint` pins the certificate's SHA-1 or SHA-256 fingerprint (as Netwrix's own add-ons
    do, for the server's self-signed certificate), and `insecure` checks nothing: an explicit
    opt-in only.
    """

    model_config = _STRICT

    mode: Literal["system", "ca_file", "thumbprint", "insecure"] = "system"
    ca_file: Path | None = None
    thumbprint: str | None = None

    @field_validator("thumbprint")
    @classmethod
    def _normalize_thumbprint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        hexed = re.sub(r"[\s:\-]", "", value).lower()
        if not _HEX.fullmatch(hexed) or len(hexed) not in (40, 64):
            raise ValueError(
                "thumbprint must be a SHA-1 (40 hex digits) or SHA-256 (64 hex digits) "
                "fingerprint, colons optional, e.g. 'AB:CD:...'"
            )
        return hexed

    @model_validator(mode="after")
    def _mode_needs(self) -> Self:
        if self.mode == "ca_file" and self.ca_file is None:
            raise ValueError("tls mode 'ca_file' needs ca_file")
        if self.mode == "thumbprint" and self.thumbprint is None:
            raise ValueError("tls mode 'thumbprint' needs thumbprint")
        return self


class RetryConfig(BaseModel):
    """Backoff for 5xx answers and transport errors; `max_attempts` None retries forever.

    `bisect_after_500`: a body answered 500 on every attempt for this many seconds is bisected to
    find the records the server never takes (quarantined); 0 retries a 500 forever like a 503.
    """

    model_config = _STRICT

    base: float = Field(0.5, gt=0)
    factor: float = Field(2.0, ge=1)
    cap: float = Field(30.0, gt=0)
    max_attempts: int | None = Field(None, ge=1)
    bisect_after_500: float = Field(
        300.0, ge=0, description="seconds of nothing but 500s before a body is bisected; 0: never"
    )


class NetwrixConfig(BaseModel):
    """Where and how to write Activity Records."""

    model_config = _STRICT

    url: str = "https://localhost:9699"
    write_path: str = DEFAULT_WRITE_PATH
    format: Format = "xml"
    auth: AuthConfig = AuthConfig(method="none")
    tls: TlsConfig = TlsConfig()
    timeout: float = Field(60.0, gt=0, description="seconds for connect, each read and each write")
    max_in_flight: int = Field(4, ge=1, le=64, description="concurrent write requests")
    retry: RetryConfig = RetryConfig()

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not re.match(r"https?://[^/\s]+", value):
            raise ValueError("url must look like https://HOST:9699 (http:// only if HTTPS is off)")
        return value.rstrip("/")

    @field_validator("write_path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("write_path must start with '/'")
        return value

    @property
    def write_url(self) -> str:
        """The full write URL, with `?format=json` for JSON."""
        query = "?format=json" if self.format == "json" else ""
        return f"{self.url}{self.write_path}{query}"


class BatchConfig(BaseModel):
    """Request size limits and how long a partial batch may wait."""

    model_config = _STRICT

    max_batch_bytes: int = Field(DEFAULT_MAX_BATCH_BYTES, ge=1024)
    max_batch_records: int = Field(DEFAULT_MAX_BATCH_RECORDS, ge=1, le=DEFAULT_MAX_BATCH_RECORDS)
    linger: float = Field(1.0, ge=0, description="seconds a partial batch waits for more records")
