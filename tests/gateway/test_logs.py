"""The daemon's log lines (``calsync.gateway.logs``): one line each, and bounded.

A client's data can end up in a message (Radicale's "Failed to parse line: ...",
a request path), and an exception's message repeats it: a PUT with a 3 MB bad
line wrote a 6 MB log line (found by tests/adversarial).  Every text of a line
is cut to ``MAX_TEXT`` saying how much was cut; a warning's exception is its
last line only, an error's traceback is kept (its lines cut), ending where it
was raised.
"""

from __future__ import annotations

import json
import logging
import sys

import pytest

from calsync.gateway.logs import JsonFormatter, TextFormatter

LONGEST = 3000  # characters: a line with a message and an exception


def record(
    level: int, msg: str, *args: object, exc: BaseException | None = None
) -> logging.LogRecord:
    exc_info = None
    if exc is not None:
        try:
            raise exc
        except BaseException:
            exc_info = sys.exc_info()
    return logging.LogRecord("radicale", level, __file__, 1, msg, args, exc_info)


HUGE = "X" * 3_000_000


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()], ids=["text", "json"])
def test_a_client_s_data_cannot_make_a_long_line(formatter: logging.Formatter) -> None:
    line = formatter.format(
        record(logging.WARNING, "Bad PUT request: %s", HUGE, exc=ValueError(f"Failed: {HUGE}"))
    )
    assert "\n" not in line and len(line) < LONGEST, len(line)
    assert "characters cut" in line
    assert "Traceback" not in line  # a warning: the exception's last line only
    assert "ValueError: Failed: XXX" in line


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()], ids=["text", "json"])
def test_an_error_keeps_its_traceback_bounded(formatter: logging.Formatter) -> None:
    def failing() -> None:
        raise RuntimeError(HUGE)

    try:
        failing()
    except RuntimeError:
        exc_info = sys.exc_info()
    rec = logging.LogRecord("calsync", logging.ERROR, __file__, 1, "crashed", (), exc_info)
    line = formatter.format(rec)
    assert "\n" not in line and len(line) < 4 * LONGEST, len(line)
    text = json.loads(line)["error"] if line.startswith("{") else line.replace("\\n", "\n")
    assert "Traceback" in text and "in failing" in text and "RuntimeError: XXX" in text


def test_event_fields_are_bounded() -> None:
    from calsync.gateway.logs import event

    seen: list[str] = []
    handler = logging.Handler()
    handler.setFormatter(TextFormatter())
    handler.emit = lambda r: seen.append(handler.format(r))  # type: ignore[method-assign]
    log = logging.getLogger("calsync.test-logs")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        event(log, "api.request", path="/" + HUGE, agent="ok")
    finally:
        log.removeHandler(handler)
    assert len(seen[0]) < LONGEST and "agent=ok" in seen[0]
