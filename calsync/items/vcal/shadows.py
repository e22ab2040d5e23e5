"""Keeping what the other format cannot say, so a round trip loses nothing.

Two kinds of kept values, in X- properties that every reader carries along:

- a *shadow*: the original value of a property whose mapping is not one to
  one (a device's STATUS:SENT becomes NEEDS-ACTION; a vCalendar rule with '$'
  marks; an iCalendar rule vCalendar cannot express, approximated).  It records
  the mapped value it stands for (``X-CALSYNC-FOR``); when converting back, the
  original is used only while the mapped value is still the same -- if a user
  changed the property in between, the change wins and the shadow is dropped.
- a *carried* property: one the other format has no place for at all (an
  iCalendar DTSTAMP or COMMENT in a .vcs file, a device's second DESCRIPTION
  in an .ics file), restored under its own name.

``X-CALSYNC-VCAL-*`` live on the iCalendar side (device values, as escaped
text); ``X-CALSYNC-ICAL-*`` on the vCalendar side (iCalendar values, verbatim).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from calsync.items.lines import Component, LineError, Prop, parse_prop, unquote
from calsync.items.vcal.lexer import VComp
from calsync.items.vcal.text import ical_escape, ical_unescape, quote_param

VCAL_PREFIX = "X-CALSYNC-VCAL-"
ICAL_PREFIX = "X-CALSYNC-ICAL-"
FOR = "X-CALSYNC-FOR"
# on the vCalendar side: the iCalendar item had no DTSTAMP (do not make one up)
NO_DTSTAMP = "NO-DTSTAMP"
# on the vCalendar side: a whole sub-component (VALARM, VLOCATION...) as its text
VALARM = "VALARM"
COMPONENT = "COMPONENT"

Back = Callable[[], str | None]


def target(value: str) -> str:
    """What a shadow records of the value it stands for: the value, or for a long
    one a digest (a 100 kB DESCRIPTION need not be stored twice)."""
    if len(value) <= 60:
        return value
    value = value.replace("\r\n", "\n")  # as a device's copy reads back
    return "#" + hashlib.blake2b(value.encode("utf-8"), digest_size=12).hexdigest()


def matches(recorded: str, current: str, same: Callable[[str, str], bool]) -> bool:
    if recorded.startswith("#") and len(recorded) == 25:
        return target(current) == recorded
    return same(recorded, current)


def shadow_prop(name: str, vcal_text: str, ical_value: str) -> Prop:
    """An iCalendar-side shadow of a device value."""
    return Prop(
        VCAL_PREFIX + name, ((FOR, quote_param(target(ical_value))),), ical_escape(vcal_text)
    )


@dataclass
class Kept:
    name: str
    params: list[tuple[str, str]]
    value: str
    target: str | None  # the mapped value it stands for; None: a carried property
    used: bool = False


class Restorer:
    """The kept values of one component, handed out as the conversion asks."""

    def __init__(self, kept: list[Kept]) -> None:
        self.kept = kept

    @classmethod
    def from_vcal(cls, comp: VComp) -> Restorer:
        kept = []
        for prop in comp.props:
            if prop.name.startswith(ICAL_PREFIX):
                params = [(k, v) for k, v in prop.other_params() if k != FOR]
                kept.append(Kept(prop.name[len(ICAL_PREFIX) :], params, prop.text, prop.param(FOR)))
        return cls(kept)

    @classmethod
    def from_ical(cls, comp: Component) -> Restorer:
        kept = []
        for prop in comp.props:
            if prop.name.startswith(VCAL_PREFIX):
                params = [(k, unquote(v) if v is not None else "") for k, v in prop.params]
                target = next((v for k, v in params if k == FOR), None)
                params = [(k, v) for k, v in params if k != FOR]
                kept.append(
                    Kept(prop.name[len(VCAL_PREFIX) :], params, ical_unescape(prop.value), target)
                )
        return cls(kept)

    def mapped(self, name: str, current: str, same: Callable[[str, str], bool]) -> Kept | None:
        """The shadow of ``name`` standing for ``current`` (the mapped value now)."""
        for k in self.kept:
            if k.used or k.target is None or k.name != name:
                continue
            if matches(k.target, current, same):
                k.used = True
                return k
        return None

    def absent(self, present: set[str]) -> list[Kept]:
        """Shadows of properties that map to nothing, when still nothing is there."""
        out = []
        for k in self.kept:
            if not k.used and k.target == "" and k.name not in present:
                k.used = True
                out.append(k)
        return out

    def flag(self, name: str) -> bool:
        """Whether a carried marker (a name with no property behind it) is there."""
        found = False
        for k in self.kept:
            if k.name == name and k.target is None:
                k.used = True
                found = True
        return found

    def carried(self) -> list[Kept]:
        out = []
        for k in self.kept:
            if not k.used and k.target is None:
                k.used = True
                out.append(k)
        return out


# kept whole, as the content line (name, parameters and value)
WHOLE_LINE = frozenset({"ATTENDEE", "ORGANIZER", "DTSTART", "DTEND", "DUE"})


def as_ical_prop(kept: Kept) -> Prop:
    if kept.name in WHOLE_LINE:
        try:
            return parse_prop(kept.value)
        except LineError:
            pass
    return Prop(kept.name, tuple((k, quote_param(v)) for k, v in kept.params), kept.value)
