"""A faithful emulator of the Netwrix Auditor Integration API, for tests, demos and benchmarks."""

from __future__ import annotations

from .app import Emulator, EmulatorSettings, create_app
from .server import Certificate, EmulatorServer, self_signed_certificate

__all__ = ["Certificate", "Emulator", "EmulatorServer", "EmulatorSettings", "create_app", "self_signed_certificate"]
