"""The output half: Activity Records, their encodings, batching, retries and the HTTP client of the
Netwrix Auditor Integration API.

It knows nothing of syslog: nothing here imports `parsers` or the service side of `ingestor`
(listeners, pipeline, spool, service, CLI); the only module outside this package it uses is the
shared exception tree, `ingestor.errors`. `tests/test_layout.py` holds that boundary. The
service and the emulator import this package, never the other way round.
"""
