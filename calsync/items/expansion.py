"""Bounded recurrence expansion: no rule may cost more than a fixed budget.

Why: expanding a recurrence rule walks it from its start, period by period
(python-dateutil does it for calsync, vobject and Radicale alike).  A
FREQ=SECONDLY rule costs a step per second since DTSTART; a vCalendar rule
with a count of a hundred million and an end in 9999 costs millions; a rule
whose BY parts never match (``FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30``) is walked
day by day to year 9999 without producing anything to stop at (3-6 s), and an
exclusion rule is walked inside the set, out of its caller's sight.  One such
200-byte item made a CalDAV REPORT run at full CPU for minutes.

Rules:

- every expansion runs under a budget: at most ``MAX_OCCURRENCES`` occurrences,
  ``MAX_STEPS`` periods walked (exclusion rules included) and ``MAX_SECONDS``;
- past the budget the expansion *stops*: the caller gets the occurrences found
  so far, never an exception, and the stop is counted per thread
  (``watch()``), so a caller that must not take a partial answer for the whole
  (a time-range match, the end of a recurrence) can tell and be conservative;
- ``bounded(rule)`` is the expansion (any dateutil rule or set, or vobject's,
  built without dateutil's ``cache=True``: a walk stopped by the budget would
  keep the cache's lock); ``budgeted()`` runs other code that walks rules
  (building a set that peeks at its first occurrence) under one budget, and
  raises ``ExpansionCapped`` past it.

The periods are counted by the one hook this module puts into dateutil: its
per-walk helper class (``dateutil.rrule._iterinfo``, instantiated by
``rrule._iter`` for every walk) is replaced by a subclass whose day-set methods
(one call per period) count a step against the budget of the running
expansion.  Walks outside any budget are not counted and run as before.
tests/items/test_expansion.py pins the source of what the hook relies on and
fails loudly when a dateutil release changes it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from dateutil import rrule as _du

MAX_OCCURRENCES = 20_000  # a daily rule for 54 years
MAX_STEPS = 50_000  # periods walked: a daily walk of 137 years
MAX_SECONDS = 0.25
_CLOCK_EVERY = 64  # steps between looks at the clock

T = TypeVar("T")


class ExpansionCapped(Exception):
    """Code run under ``budgeted()`` walked past the budget."""


class _Exhausted(Exception):
    """Raised inside dateutil's walk when the budget is spent (never escapes here)."""


class Budget:
    """Steps and time one expansion may spend."""

    __slots__ = ("deadline", "max_steps", "steps")

    def __init__(self, max_steps: int = MAX_STEPS) -> None:
        self.steps = 0
        self.max_steps = max_steps
        self.deadline = time.monotonic() + MAX_SECONDS

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.max_steps or (
            self.steps % _CLOCK_EVERY == 0 and time.monotonic() > self.deadline
        ):
            raise _Exhausted


class _State(threading.local):
    budget: Budget | None = None
    truncated = 0


_state = _State()


def _step() -> None:
    budget = _state.budget
    if budget is not None:
        budget.step()


def _note_truncation() -> None:
    _state.truncated += 1


class Watch:
    """Did an expansion in this thread stop at the budget since the watch began?"""

    __slots__ = ("_start",)

    def __init__(self) -> None:
        self._start = _state.truncated

    @property
    def truncated(self) -> bool:
        return _state.truncated != self._start


def watch() -> Watch:
    return Watch()


def bounded(rule: Iterable[T]) -> Iterator[T]:
    """The occurrences of ``rule`` up to the budget (see the module docstring)."""
    budget = Budget()
    it = iter(rule)
    produced = 0
    while True:
        if produced >= MAX_OCCURRENCES:
            _note_truncation()
            return
        outer = _state.budget
        _state.budget = budget  # only while the rule walks: walks can interleave
        try:
            value = next(it)
            budget.step()
        except StopIteration:
            return
        except _Exhausted:
            _note_truncation()
            return
        finally:
            _state.budget = outer
        produced += 1
        yield value


@contextmanager
def budgeted(max_steps: int = MAX_STEPS) -> Iterator[None]:
    """Run a block that walks rules under one budget (of ``max_steps`` periods at
    most); ``ExpansionCapped`` past it."""
    outer = _state.budget
    _state.budget = Budget(max_steps)
    try:
        yield
    except _Exhausted:
        _note_truncation()
        raise ExpansionCapped("recurrence expansion past its budget") from None
    finally:
        _state.budget = outer


# -- the hook ------------------------------------------------------------------------------


def _counted(name: str) -> Any:
    """dateutil's day-set method ``name``, counting a step first."""
    plain = getattr(_du._iterinfo, name)

    def counted(self: Any, year: int, month: int, day: int) -> Any:
        _step()
        return plain(self, year, month, day)

    return counted


class CountedWalk(_du._iterinfo):
    """dateutil's per-walk helper, counting one step per period walked: every walk
    calls one of these once a period (no ``__slots__`` of its own: the base's
    ``__init__`` walks ``self.__slots__``)."""

    ydayset = _counted("ydayset")
    mdayset = _counted("mdayset")
    wdayset = _counted("wdayset")
    ddayset = _counted("ddayset")


def hooked_walk() -> type:
    """The hook class (for the test that checks it is in place)."""
    return CountedWalk


if not issubclass(_du._iterinfo, CountedWalk):
    _du._iterinfo = CountedWalk
