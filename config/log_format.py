"""LOG_FORMAT=json: each log record as one JSON object on one line, for log collectors."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

# What every LogRecord has; anything else on a record came from `extra=` and is written out.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """`timestamp` (ISO 8601, UTC), `level`, `logger`, `message`, then the record's `extra=`
    fields, and `exception` with the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in entry:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)
