"""Where calsync reaches past Radicale's plugin interfaces: one place, checked by tests.

calsync uses Radicale as a library through its plugins (storage, auth,
rights).  One thing needs more: Radicale expands recurrence rules itself
(time-range filters, free-busy, ``expand``, its own PUT checks, an item's
enclosing time range), always through vobject's
``RecurringComponent.getrruleset``, and walks them from DTSTART to whatever
range a client asks for: one FREQ=SECONDLY event made a one-year REPORT run for
minutes.  ``install()`` replaces that method (and the ``rruleset`` property
built on it) with one that

- builds the same set under a tenth of an expansion budget (vobject peeks at
  the first occurrence while building it, which a rule that never matches
  would walk to year 9999; past the budget the set is built without that
  peek, and the DTSTART it would have added when the rule skips it is left
  out), and
- returns it as a ``BoundedRuleSet``, whose every iteration (``__iter__``, which
  dateutil's ``between``, ``before``, indexing and ``count`` all go through) is
  ``calsync.items.expansion.bounded``.

So every expansion Radicale does stops at the budget and yields what it found
so far; callers that must not take that for the whole answer watch for it
(``expansion.watch``: ``storage.facts_of`` and ``Calendar.get_filtered``).
What a client gets for such an item is in ``storage``'s docstring.

The hook is process-wide (vobject is Radicale's parser, and nothing else in
calsync uses it); ``Storage`` installs it when Radicale creates its storage.
tests/davserver/test_radicale_hooks.py pins the source of the replaced method
and of every Radicale function that relies on it: an upgrade of Radicale or
vobject that changes one fails that test, naming what to re-check here.
"""

from __future__ import annotations

from typing import Any

from dateutil import rrule
from vobject import icalendar as vobject_icalendar

from calsync.items import expansion

_component = vobject_icalendar.RecurringComponent
original_getrruleset = _component.getrruleset


class BoundedRuleSet(rrule.rruleset):
    """A rule set whose iteration stops at the expansion budget."""

    def __iter__(self) -> Any:
        return expansion.bounded(super().__iter__())


PEEK_STEPS = expansion.MAX_STEPS // 10  # a first occurrence is near its start


def _bounded_getrruleset(self: Any, addRDate: bool = False) -> Any:  # vobject's names
    try:
        with expansion.budgeted(PEEK_STEPS):
            found = original_getrruleset(self, addRDate)
    except expansion.ExpansionCapped:
        found = original_getrruleset(self, False)  # no peek at the first occurrence
    if found is not None:
        found.__class__ = BoundedRuleSet
    return found


def install() -> None:
    """Bound every rule expansion of vobject (and so of Radicale); idempotent."""
    if _component.getrruleset is _bounded_getrruleset:
        return
    _component.getrruleset = _bounded_getrruleset
    _component.rruleset = property(_bounded_getrruleset, _component.setrruleset)


def installed() -> bool:
    return _component.getrruleset is _bounded_getrruleset
