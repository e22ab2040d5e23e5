"""Structured daemon logs: one line per event, ``key=value`` text or JSON lines.

Why: a daemon nobody watches is debugged from its log afterwards, so every
line names what it is about (``event``, ``pair``, ``store``, ``uid``...).
``event(log, "sync.done", pair="main", added=3)`` logs one such line; lines
from other modules (the engine's "pair main: added X to laptop") keep their
message in ``msg``.  Secrets never reach here: callers pass names, not
credentials, and ``redact`` blanks any field called like a secret anyway.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

SECRET_FIELDS = frozenset({"password", "token", "secret", "authorization"})


def event(logger: logging.Logger, name: str, level: int = logging.INFO, /, **fields: Any) -> None:
    """Log event ``name`` with ``fields`` (one line)."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": fields, "event": name})


def redact(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: ("***" if k.lower() in SECRET_FIELDS else v) for k, v in fields.items()}


def _record_fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        + f".{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "logger": record.name,
    }
    name = getattr(record, "event", None)
    if name is not None:
        out["event"] = name
        out.update(redact(getattr(record, "fields", {})))
    else:
        out["msg"] = record.getMessage()
    if record.exc_info:
        out["error"] = logging.Formatter().formatException(record.exc_info)
    return out


def _text_value(value: Any) -> str:
    if isinstance(value, list | tuple | set):
        text = ",".join(str(v) for v in value)
    elif isinstance(value, dict):
        text = ",".join(f"{k}:{v}" for k, v in value.items())
    else:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return json.dumps(text, ensure_ascii=False)
    return text


class TextFormatter(logging.Formatter):
    """``ts level logger event k=v ...`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _record_fields(record)
        head = f"{fields.pop('ts')} {fields.pop('level'):<7} {fields.pop('logger')}"
        name = fields.pop("event", None)
        parts = [head] + ([name] if name else [])
        parts += [f"{k}={_text_value(v)}" for k, v in fields.items()]
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_record_fields(record), ensure_ascii=False, default=str)


def setup(*, as_json: bool, level: int = logging.INFO) -> None:
    """Route calsync's and uvicorn's loggers through one structured handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("calsync").setLevel(min(level, logging.INFO))
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
