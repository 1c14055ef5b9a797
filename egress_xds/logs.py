"""Log output of `egress-xds serve`: plain lines for people, JSON lines for log pipelines, never a credential.

Scrubbing happens in a handler filter, before any formatter runs, so the message, its arguments and a traceback
are all cleaned whichever format is chosen (see `scrub.SecretScrubber` for what is removed).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from egress_xds.scrub import SecretScrubber

LOG_FORMATS = ("plain", "json")
# What one log line carries: each interpolated value, and the whole message. A client controls some values (a
# node id, a NACK message up to the 4 MiB request limit); logged verbatim they would flood the log. The admin API
# and CSDS still return them in full.
MAX_VALUE_CHARS = 2048
MAX_MESSAGE_CHARS = 16384
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, RFC 3339 with milliseconds), level, logger, message[, exception]."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry: dict[str, str] = {
            "time": f"{seconds}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


class SecretFilter(logging.Filter):
    """Rewrites each record's message (and traceback) through a scrubber; never drops a record."""

    def __init__(self, scrubber: SecretScrubber) -> None:
        super().__init__()
        self._scrubber = scrubber

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            # Scrub each value before it is cut, so that a cut never leaves part of a secret unrecognised.
            record.args = tuple(
                capped(self._scrubber.scrub(value)) if isinstance(value, str) else value for value in record.args
            )
        record.msg = capped(self._scrubber.scrub(record.getMessage()), MAX_MESSAGE_CHARS)
        record.args = None
        if record.exc_info:
            record.exc_text = self._scrubber.scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self._scrubber.scrub(record.exc_text)
        return True


def capped(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """`text`, or its first `limit` characters and a marker saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…({len(text.encode()) - len(text[:limit].encode())} bytes more)"


def configure_logging(level: str, log_format: str) -> None:
    """Log to stderr at `level` (debug, info, warning, error) in `log_format` (plain or json)."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r}: expected one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(PLAIN_FORMAT))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler])


def scrub_logs(scrubber: SecretScrubber) -> Callable[[], None]:
    """Clean every record that reaches a root handler from now on. Returns a function that undoes it."""
    secret_filter = SecretFilter(scrubber)
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(secret_filter)

    def undo() -> None:
        for handler in handlers:
            handler.removeFilter(secret_filter)

    return undo
