"""Log output: text or one JSON object per line, on stderr; set up the same way in every process
of `nwsyslog run` (the delivery process is started with the listening process's settings)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]


class JsonFormatter(logging.Formatter):
    """One JSON object per log record: time (UTC, ISO 8601), level, logger, message, and the
    traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        obj = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            obj["exception"] = self.formatException(record.exc_info)
        return json.dumps(obj, ensure_ascii=False)


def setup_logging(level: str, log_format: LogFormat) -> None:
    """Log at `level` ("debug", "info", ...) to stderr in `log_format`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    if level != "debug":  # one line per HTTP request is noise at info level
        logging.getLogger("httpx").setLevel(logging.WARNING)


def current_settings() -> tuple[str, LogFormat]:
    """This process's level and format, as `setup_logging` takes them (for a child process)."""
    root = logging.getLogger()
    level = logging.getLevelName(root.getEffectiveLevel()).lower()
    json_out = any(isinstance(h.formatter, JsonFormatter) for h in root.handlers)
    return level, "json" if json_out else "text"


def error_line(message: str) -> str:
    """A command's error as it goes to stderr: `nwsyslog: MESSAGE`, or under --log-format json a
    JSON object like the log's (so that nothing but JSON reaches stderr then)."""
    if current_settings()[1] == "json":
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        return json.dumps({"time": now, "level": "error", "logger": "nwsyslog", "message": message}, ensure_ascii=False)
    return f"nwsyslog: {message}"
