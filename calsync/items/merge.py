"""Property-level three-way merge of two edited versions of one item.

Why: when both sides edited the same event since the last sync, the edits
usually touch different things (a title on the phone, a location on the
laptop).  Other tools throw one whole version away; we merge against the last
synced version (the *base*) and only fall back to a policy for a property that
both sides changed differently.

Rules:
- components are matched by (type, RECURRENCE-ID): an override added on one
  side and an EXDATE added on the other both survive; an override deleted on
  one side and untouched on the other is deleted; deleted on one side but
  edited on the other is kept (an edit beats a delete);
- single-valued properties (SUMMARY, DTSTART, RRULE...): the side that differs
  from the base wins; if both differ (and differ from each other) the fallback
  decides, and the property is reported as overlapping;
- multi-valued properties (ATTENDEE by address; CATEGORIES, EXDATE, RDATE,
  RESOURCES by value; ATTACH, COMMENT, CONTACT, RELATED-TO by line) and VALARMs
  merge as sets: an element is kept if both sides have it, or if one side
  added it; it is dropped if one side removed it and the other did not touch it;
  an attendee both sides changed merges parameter by parameter (one side's
  PARTSTAT, the other's CN);
- bookkeeping properties (DTSTAMP, LAST-MODIFIED, SEQUENCE) take the maximum.

Everything works on the light ``lines`` tree, so untouched properties keep
their exact text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from calsync.items.lines import Component, Prop

# Properties whose elements merge as sets, and how an element is keyed.
_BY_ADDRESS = frozenset({"ATTENDEE"})
_BY_VALUE = frozenset({"CATEGORIES", "EXDATE", "RDATE", "RESOURCES"})
_BY_LINE = frozenset({"ATTACH", "COMMENT", "CONTACT", "RELATED-TO", "X-MOZ-SNOOZE"})
MULTI = _BY_ADDRESS | _BY_VALUE | _BY_LINE
_MAX = frozenset({"DTSTAMP", "LAST-MODIFIED", "SEQUENCE"})


@dataclass
class MergeResult:
    calendar: Component
    overlapping: list[str] = field(default_factory=list)  # "VEVENT[RID]:SUMMARY" ...

    @property
    def clean(self) -> bool:
        return not self.overlapping


# which side wins an overlapping edit of one component: "a" or "b"
Chooser = Callable[[Component | None, Component | None], str]


def component_stamp(c: Component | None) -> tuple[str, int, str]:
    """(LAST-MODIFIED, SEQUENCE, DTSTAMP) of a component, to tell the newer one."""
    if c is None:
        return ("", -1, "")
    try:
        seq = int((c.value("SEQUENCE") or "0").strip())
    except ValueError:
        seq = 0
    return (
        (c.value("LAST-MODIFIED") or "").strip(),
        seq,
        (c.value("DTSTAMP") or "").strip(),
    )


def newest_chooser(tie: str = "a") -> Chooser:
    """Prefer the component with the newest LAST-MODIFIED, SEQUENCE, DTSTAMP."""

    def choose(a: Component | None, b: Component | None) -> str:
        sa, sb = component_stamp(a), component_stamp(b)
        if sa == sb:
            return tie
        return "a" if sa > sb else "b"

    return choose


def fixed_chooser(side: str) -> Chooser:
    return lambda a, b: side


def _key(c: Component) -> tuple[str, str]:
    rid = c.get("RECURRENCE-ID")
    return (c.name, rid.value.strip() if rid is not None else "")


def merge_calendars(
    base: Component | None, a: Component, b: Component, choose: Chooser
) -> MergeResult:
    """Merge two VCALENDARs of the same UID against their common ``base``."""
    out = Component("VCALENDAR", list(a.props), [])
    result = MergeResult(out)
    # time zones: a's, then b's that a lacks
    tzs: dict[str, Component] = {}
    for cal in (a, b):
        for tz in cal.children("VTIMEZONE"):
            tzs.setdefault((tz.value("TZID") or "").strip(), tz)
    out.subs.extend(tzs.values())

    def items(cal: Component | None) -> dict[tuple[str, str], Component]:
        if cal is None:
            return {}
        return {_key(c): c for c in cal.subs if c.name != "VTIMEZONE"}

    ib, ia, ib2 = items(base), items(a), items(b)
    order = list(ia) + [k for k in ib2 if k not in ia]
    for key in order:
        ca, cb, c0 = ia.get(key), ib2.get(key), ib.get(key)
        label = key[0] + (f"[{key[1]}]" if key[1] else "")
        if ca is not None and cb is not None:
            out.subs.append(_merge_component(c0, ca, cb, choose, label, result))
        elif ca is not None:  # b lacks it: b deleted it, or a added it
            if c0 is None or not _same(c0, ca):
                out.subs.append(ca)  # added by a, or edited by a (edit beats delete)
        elif cb is not None and (c0 is None or not _same(c0, cb)):
            out.subs.append(cb)
    return result


def _same(x: Component, y: Component) -> bool:
    return _canon(x) == _canon(y)


def _canon(c: Component) -> tuple[tuple[str, ...], tuple[object, ...]]:
    props = tuple(sorted(p.canonical() for p in c.props if p.name not in ("DTSTAMP",)))
    subs = tuple(sorted(_canon(s) for s in c.subs))
    return props, subs


def _merge_component(
    base: Component | None,
    a: Component,
    b: Component,
    choose: Chooser,
    label: str,
    result: MergeResult,
) -> Component:
    out = Component(a.name)
    names: list[str] = []
    for p in a.props + b.props:
        if p.name not in names:
            names.append(p.name)
    winner: str | None = None  # decided lazily, once per component

    def pick() -> str:
        nonlocal winner
        if winner is None:
            winner = choose(a, b)
        return winner

    for name in names:
        la, lb = a.all(name), b.all(name)
        l0 = base.all(name) if base is not None else None
        if name in _MAX:
            out.props.extend(_maximum(la, lb))
            continue
        if name in MULTI:
            out.props.extend(_merge_set(name, l0, la, lb))
            continue
        ka, kb = _lines(la), _lines(lb)
        if ka == kb:
            out.props.extend(la)
        elif l0 is not None and ka == _lines(l0):
            out.props.extend(lb)
        elif l0 is not None and kb == _lines(l0):
            out.props.extend(la)
        elif l0 is None and (not la or not lb):
            out.props.extend(la or lb)  # without a base: present on one side only
        else:
            result.overlapping.append(f"{label}:{name}")
            out.props.extend(la if pick() == "a" else lb)
    # sub-components (VALARM...) as a set keyed by their canonical form
    out.subs = _merge_subs(base, a, b)
    return out


def _lines(props: list[Prop]) -> tuple[str, ...]:
    return tuple(sorted(p.canonical() for p in props))


def _maximum(la: list[Prop], lb: list[Prop]) -> list[Prop]:
    if not la or not lb:
        return la or lb

    def val(p: Prop) -> tuple[int, str]:
        v = p.value.strip()
        return (int(v), v) if v.isdigit() else (0, v)

    return [max(la[0], lb[0], key=val)]


def _elements(name: str, props: list[Prop]) -> dict[str, Prop]:
    """Split a multi-valued property into keyed elements."""
    out: dict[str, Prop] = {}
    for p in props:
        if name in _BY_ADDRESS:
            out[p.value.strip().lower()] = p
        elif name in _BY_VALUE:
            for v in _split_values(p.value):
                out[f"{sorted(p.params)}|{v}"] = p.with_value(v)
        else:
            out[p.canonical()] = p
    return out


def _split_values(value: str) -> list[str]:
    parts: list[str] = []
    cur = ""
    i = 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            cur += value[i : i + 2]
            i += 2
            continue
        if c == ",":
            parts.append(cur.strip())
            cur = ""
        else:
            cur += c
        i += 1
    parts.append(cur.strip())
    return [p for p in parts if p]


def _merge_set(name: str, l0: list[Prop] | None, la: list[Prop], lb: list[Prop]) -> list[Prop]:
    if _lines(la) == _lines(lb):
        return la
    if l0 is not None and _lines(la) == _lines(l0):
        return lb
    if l0 is not None and _lines(lb) == _lines(l0):
        return la
    e0 = _elements(name, l0 or [])
    ea, eb = _elements(name, la), _elements(name, lb)
    out: list[Prop] = []
    for key in list(ea) + [k for k in eb if k not in ea]:
        pa, pb, p0 = ea.get(key), eb.get(key), e0.get(key)
        if pa is not None and pb is not None:
            if pa.canonical() == pb.canonical():
                out.append(pa)
            elif p0 is not None and pa.canonical() == p0.canonical():
                out.append(pb)  # b changed it (e.g. an attendee's PARTSTAT)
            elif p0 is not None and name in _BY_ADDRESS:
                out.append(_merge_params(p0, pa, pb))  # both changed one attendee
            else:
                out.append(pa)
        elif pa is not None:
            if p0 is None or p0.canonical() != pa.canonical():
                out.append(pa)  # added by a, or changed by a while b dropped it
        elif pb is not None and (p0 is None or p0.canonical() != pb.canonical()):
            out.append(pb)
    return out


def _merge_params(p0: Prop, pa: Prop, pb: Prop) -> Prop:
    """One attendee both sides changed: parameter by parameter, the side that
    changed it wins; a parameter both changed differently is a's."""

    def table(p: Prop) -> dict[str, str | None]:
        return {k: p.param(k) for k, _ in p.params}

    t0, ta, tb = table(p0), table(pa), table(pb)
    out = pa
    for key in list(ta) + [k for k in tb if k not in ta]:
        v0, va, vb = t0.get(key), ta.get(key), tb.get(key)
        if vb != v0 and va == v0:
            out = out.with_param(key, vb)
    return out


def _merge_subs(base: Component | None, a: Component, b: Component) -> list[Component]:
    def keyed(c: Component | None) -> dict[object, Component]:
        if c is None:
            return {}
        return {(s.name, _canon(s)): s for s in c.subs}

    k0, ka, kb = keyed(base), keyed(a), keyed(b)
    out: list[Component] = []
    for key in list(ka) + [k for k in kb if k not in ka]:
        in_a, in_b, in_0 = key in ka, key in kb, key in k0
        if (in_a and in_b) or ((in_a or in_b) and not in_0):
            out.append(ka.get(key) or kb[key])
    return out
