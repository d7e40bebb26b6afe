"""nwsyslog: syslog from Cisco IOS and Linux into Netwrix Auditor Activity Records.

The public API of the output path; see README.md for the service.
"""

from __future__ import annotations

from .errors import (
    AuthError,
    ConfigError,
    DeliveryError,
    DeliveryHalted,
    EndpointError,
    NwsyslogError,
    RecordTooLarge,
    RetriesExhausted,
    StartupError,
    TlsPinError,
)
from .netwrix.batcher import Batch, Batcher, Entry
from .netwrix.client import MemoryQuarantine, NetwrixClient, Quarantine
from .netwrix.config import AuthConfig, BatchConfig, NetwrixConfig, RetryConfig, TlsConfig
from .netwrix.encoding import Encoder, JsonEncoder, XmlEncoder, encoder_for
from .netwrix.records import Action, ActivityRecord, Detail, ItemRef, MonitoringPlanRef, Record
from .netwrix.retry import Backoff, Outcome, classify

__version__ = "0.1.0"

__all__ = [
    "Action",
    "ActivityRecord",
    "AuthConfig",
    "AuthError",
    "Backoff",
    "Batch",
    "BatchConfig",
    "Batcher",
    "ConfigError",
    "DeliveryError",
    "DeliveryHalted",
    "Detail",
    "Encoder",
    "EndpointError",
    "Entry",
    "ItemRef",
    "JsonEncoder",
    "MemoryQuarantine",
    "MonitoringPlanRef",
    "NetwrixClient",
    "NetwrixConfig",
    "NwsyslogError",
    "Outcome",
    "Quarantine",
    "Record",
    "RecordTooLarge",
    "RetriesExhausted",
    "RetryConfig",
    "StartupError",
    "TlsConfig",
    "TlsPinError",
    "XmlEncoder",
    "__version__",
    "classify",
    "encoder_for",
]
