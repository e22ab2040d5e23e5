"""Structured daemon logs: one line per event, ``key=value`` text or JSON lines.

Why: a daemon nobody watches is debugged from its log afterwards, so every
line names what it is about (``event``, ``pair``, ``store``, ``uid``...).
``event(log, "sync.done", pair="main", added=3)`` logs one such line; lines
from other modules (the engine's "pair main: added X to laptop") keep their
message in ``msg``.  Secrets never reach here: callers pass names, not
credentials, and ``redact`` blanks any field called like a secret anyway.

Bounded: a message or field can carry a client's data (a request path,
Radicale's "Failed to parse line: ..." with the line), so every text is cut
to ``MAX_TEXT`` characters, saying how many were cut; an exception logged
with a warning (a library refusing a client's request) is its last line
only, an error's traceback its last ``MAX_TRACE`` lines.  A PUT with a 3 MB
bad line wrote a 6 MB log line before.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from typing import Any

SECRET_FIELDS = frozenset({"password", "token", "secret", "authorization"})
MAX_TEXT = 1000  # characters of a message, a field or a traceback line in one log line
MAX_TRACE = 40  # lines of an error's traceback (the last ones: where it was raised)


def event(logger: logging.Logger, name: str, level: int = logging.INFO, /, **fields: Any) -> None:
    """Log event ``name`` with ``fields`` (one line)."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": fields, "event": name})


def redact(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: ("***" if k.lower() in SECRET_FIELDS else _bounded(v)) for k, v in fields.items()}


def _bounded(value: Any) -> Any:
    """``value``, a text cut to ``MAX_TEXT`` characters saying how many were cut."""
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return f"{value[:MAX_TEXT]}... [{len(value) - MAX_TEXT} characters cut]"
    return value


def _exception(record: logging.LogRecord) -> str:
    """An error's traceback (its last ``MAX_TRACE`` lines), or a warning's exception
    (its last line: a library's complaint about a client's request is no bug)."""
    assert record.exc_info and record.exc_info[0] is not None
    kind, exc, tb = record.exc_info
    if record.levelno < logging.ERROR:
        return _bounded("".join(traceback.format_exception_only(kind, exc)).strip())
    lines = "".join(traceback.format_exception(kind, exc, tb)).strip().splitlines()
    kept = lines[-MAX_TRACE:]
    if len(lines) > len(kept):
        kept.insert(0, f"[{len(lines) - len(kept)} lines cut]")
    return "\n".join(_bounded(line) for line in kept)


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
        out["msg"] = _bounded(record.getMessage())
    if record.exc_info and record.exc_info[0] is not None:
        out["error"] = _exception(record)
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
