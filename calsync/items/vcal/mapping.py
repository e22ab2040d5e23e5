"""Value mappings between the formats: status, transparency, people, alarms.

Each mapping has both directions next to each other, so that what a device
sends and what we write back to it can be checked against each other (a value
whose round trip differs is kept aside, see ``shadows``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from calsync.items.lines import Component, Prop
from calsync.items.vcal.lexer import VProp
from calsync.items.vcal.text import (
    ical_escape,
    ical_list,
    quote_param,
    split_unescaped,
    vcal_escape,
    vcal_unescape,
)
from calsync.items.vcal.times import (
    UTC,
    TimeError,
    TimeValue,
    fmt_duration,
    fmt_ical,
    fmt_utc,
    parse_duration,
    parse_vcal,
)

if TYPE_CHECKING:
    from calsync.items.vcal.to_ical import EntryConverter

NAME_URN = "urn:x-vcal-name:"

# -- STATUS ----------------------------------------------------------------------------

_EVENT_STATUS_IN = {"CONFIRMED": "CONFIRMED", "TENTATIVE": "TENTATIVE", "DECLINED": "CANCELLED",
                    "CANCELLED": "CANCELLED"}  # fmt: skip
_EVENT_STATUS_OUT = {"CONFIRMED": "CONFIRMED", "TENTATIVE": "TENTATIVE", "CANCELLED": "DECLINED"}
_TODO_STATUS_IN = {
    "NEEDS ACTION": "NEEDS-ACTION", "COMPLETED": "COMPLETED", "IN-PROCESS": "IN-PROCESS",
    "ACCEPTED": "IN-PROCESS", "DECLINED": "CANCELLED", "CANCELLED": "CANCELLED",
    "SENT": "NEEDS-ACTION", "TENTATIVE": "NEEDS-ACTION", "CONFIRMED": "NEEDS-ACTION",
    "DELEGATED": "NEEDS-ACTION",
}  # fmt: skip
_TODO_STATUS_OUT = {"NEEDS-ACTION": "NEEDS ACTION", "COMPLETED": "COMPLETED",
                    "IN-PROCESS": "ACCEPTED", "CANCELLED": "DECLINED"}  # fmt: skip


def _spelling(text: str) -> str:
    """NEEDS_ACTION, NEEDS-ACTION and NEEDS ACTION are one value; so are INPROCESS..."""
    value = re.sub(r"[\s_-]+", " ", text.strip().upper())
    if value in ("IN PROCESS", "INPROCESS"):
        return "IN-PROCESS"
    return value


def status_to_ical(kind: str, text: str) -> str | None:
    table = _EVENT_STATUS_IN if kind == "VEVENT" else _TODO_STATUS_IN
    return table.get(_spelling(text))


def status_to_vcal(kind: str, value: str | None) -> str | None:
    if not value:
        return None
    table = _EVENT_STATUS_OUT if kind == "VEVENT" else _TODO_STATUS_OUT
    return table.get(value.upper(), value.upper())


# -- TRANSP ------------------------------------------------------------------------------


def transp_to_ical(text: str) -> str:
    value = text.strip().upper()
    return "TRANSPARENT" if value in ("1", "TRANSPARENT") else "OPAQUE"


def transp_to_vcal(value: str) -> str:
    return "1" if value.strip().upper() == "TRANSPARENT" else "0"


# -- lists --------------------------------------------------------------------------------


def list_to_vcal(ical_value: str) -> str:
    return ";".join(vcal_escape(v, comma=True) for v in ical_list(ical_value))


# -- people ------------------------------------------------------------------------------

_PERSON = re.compile(r'^\s*"?([^"<]*?)"?\s*<([^<>]+)>\s*$')
_ROLE_IN = {"OWNER": "CHAIR", "DELEGATE": "REQ-PARTICIPANT"}
_EXPECT_IN = {"FYI": "NON-PARTICIPANT", "REQUEST": "OPT-PARTICIPANT", "REQUIRE": "REQ-PARTICIPANT",
              "IMMEDIATE": "REQ-PARTICIPANT"}  # fmt: skip
_ROLE_OUT = {
    "CHAIR": [("ROLE", "OWNER")],
    "REQ-PARTICIPANT": [("ROLE", "ATTENDEE"), ("EXPECT", "REQUIRE")],
    "OPT-PARTICIPANT": [("ROLE", "ATTENDEE"), ("EXPECT", "REQUEST")],
    "NON-PARTICIPANT": [("ROLE", "ATTENDEE"), ("EXPECT", "FYI")],
}
_PARTSTAT_IN = {"NEEDS ACTION": "NEEDS-ACTION", "SENT": "NEEDS-ACTION", "CONFIRMED": "ACCEPTED"}
_PARTSTAT_OUT = {"NEEDS-ACTION": "NEEDS ACTION"}
_VCAL_ATTENDEE_PARAMS = ("ROLE", "EXPECT", "STATUS", "RSVP")
SHADOW_PARAM = "X-CALSYNC-VCAL"


def parse_person(text: str) -> tuple[str | None, str | None]:
    """(name, address) of "Name <addr>", "MAILTO:addr", "addr" or a bare name."""
    text = text.strip()
    if text.upper().startswith("MAILTO:"):
        text = text[7:].strip()
    m = _PERSON.match(text)
    if m:
        address = m.group(2).strip()
        if address.upper().startswith("MAILTO:"):
            address = address[7:]
        return (m.group(1).strip() or None), address
    if "@" in text and " " not in text:
        return None, text
    return text, None


def _role_in(role: str | None, expect: str | None) -> str | None:
    if role and role.upper() in _ROLE_IN:
        return _ROLE_IN[role.upper()]
    if role and role.upper() not in ("ATTENDEE", "ORGANIZER"):
        return role.upper()
    if expect:
        return _EXPECT_IN.get(expect.upper(), "REQ-PARTICIPANT")
    return None


def _partstat_in(status: str | None) -> str | None:
    if not status:
        return None
    value = _spelling(status)
    return _PARTSTAT_IN.get(value, value.replace(" ", "-"))


def _rsvp_in(rsvp: str | None) -> str | None:
    if not rsvp:
        return None
    return "TRUE" if rsvp.strip().upper() in ("YES", "TRUE", "1") else "FALSE"


def _vcal_people_params(
    role: str | None, partstat: str | None, rsvp: str | None, organizer: bool
) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if organizer:
        out.append(("ROLE", "ORGANIZER"))
    elif role:
        out += _ROLE_OUT.get(role.upper(), [("ROLE", role.upper())])
    else:
        out.append(("ROLE", "ATTENDEE"))
    if partstat:
        out.append(("STATUS", _PARTSTAT_OUT.get(partstat.upper(), partstat.upper())))
    if rsvp:
        out.append(("RSVP", "YES" if rsvp.upper() == "TRUE" else "NO"))
    return out


def _encode_params(params: list[tuple[str, str]]) -> str:
    return ",".join(f"{k}={v}" for k, v in params)


def _decode_params(text: str) -> list[tuple[str, str]]:
    out = []
    for piece in text.split(","):
        if "=" in piece:
            k, _, v = piece.partition("=")
            out.append((k.strip().upper(), v.strip()))
    return out


def attendee_to_ical(prop: VProp, organizer: bool) -> Prop:
    """A vCalendar ATTENDEE as an iCalendar ATTENDEE (or ORGANIZER)."""
    text = vcal_unescape(prop.text.strip())
    name, address = parse_person(text)
    if (
        address
        and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", address)
        and "@" not in address.split(":")[0]
    ):
        value = address  # already a URI (urn:uuid:..., sip:..., tel:...)
    elif address:
        value = "mailto:" + address
    else:
        value = NAME_URN + quote(text, safe="@._-")
    original = [
        (k, prop.param(k) or "") for k in _VCAL_ATTENDEE_PARAMS if prop.param(k) is not None
    ]
    if prop.name != "ATTENDEE":
        original.insert(0, ("PROPERTY", prop.name))  # a device's ORGANIZER property
    role = _role_in(prop.param("ROLE"), prop.param("EXPECT"))
    partstat = _partstat_in(prop.param("STATUS"))
    rsvp = _rsvp_in(prop.param("RSVP"))
    params: list[tuple[str, str]] = []
    if name:
        params.append(("CN", name))
    if not organizer:
        if role:
            params.append(("ROLE", role))
        if partstat:
            params.append(("PARTSTAT", partstat))
        if rsvp:
            params.append(("RSVP", rsvp))
    params += prop.other_params(*_VCAL_ATTENDEE_PARAMS)
    back = _vcal_people_params(
        None if organizer else role,
        None if organizer else partstat,
        None if organizer else rsvp,
        organizer,
    )
    if [(k, v.upper()) for k, v in back] != [(k, _spelling(v)) for k, v in original]:
        params.append((SHADOW_PARAM, _encode_params(original)))
    return Prop("ORGANIZER" if organizer else "ATTENDEE",
                tuple((k, quote_param(v)) for k, v in params), value)  # fmt: skip


def attendee_to_vcal(prop: Prop, organizer: bool) -> tuple[str, list[tuple[str, str]], str]:
    """(vCalendar property name, parameters, value) of an iCalendar ATTENDEE or ORGANIZER."""
    value = prop.value.strip()
    name = prop.param("CN")
    if value.lower().startswith(NAME_URN):
        text = unquote(value[len(NAME_URN) :])
    else:
        address = value[7:] if value.lower().startswith("mailto:") else value
        text = f"{name} <{address}>" if name else address
    role = None if organizer else prop.param("ROLE")
    partstat = None if organizer else prop.param("PARTSTAT")
    rsvp = None if organizer else prop.param("RSVP")
    params = _vcal_people_params(role, partstat, rsvp, organizer)
    vcal_name = "ATTENDEE"
    shadow = prop.param(SHADOW_PARAM)
    if shadow is not None:
        original = _decode_params(shadow)
        get = dict(original).get
        if get("PROPERTY"):
            if organizer:
                vcal_name = get("PROPERTY") or vcal_name
            original = [(k, v) for k, v in original if k != "PROPERTY"]
        again_role = None if organizer else _role_in(get("ROLE"), get("EXPECT"))
        again = (again_role, None if organizer else _partstat_in(get("STATUS")),
                 None if organizer else _rsvp_in(get("RSVP")))  # fmt: skip
        now = tuple(v.upper() if v else None for v in (role, partstat, rsvp))
        if again == now:
            params = original
    skip = {"CN", "ROLE", "PARTSTAT", "RSVP", SHADOW_PARAM}
    params += [(k, v if v is not None else "") for k, v in _unquoted(prop) if k not in skip]
    return vcal_name, params, vcal_escape(text)


def _unquoted(prop: Prop) -> list[tuple[str, str | None]]:
    from calsync.items.lines import unquote as uq

    return [(k, uq(v) if v is not None else None) for k, v in prop.params]


# -- alarms -------------------------------------------------------------------------------

_ACTIONS = {"AALARM": "AUDIO", "DALARM": "DISPLAY", "PALARM": "PROCEDURE", "MALARM": "EMAIL"}
_ALARM_NAMES = {v: k for k, v in _ACTIONS.items()}
REPEAT_KEPT = "X-CALSYNC-VCAL-REPEAT"


class AlarmError(ValueError):
    pass


def attach_in(text: str, params: list[tuple[str, str]]) -> Prop:
    """Alarm content (sound, program) as an ATTACH."""
    out = [(k, v) for k, v in params if k != "VALUE"]
    value_type = next((v.upper() for k, v in params if k == "VALUE"), "")
    value = text.strip()
    if value_type in ("CID", "CONTENT-ID"):
        cid = value.strip("<>")
        value = cid if cid.lower().startswith("cid:") else "cid:" + cid
        out.append(("VALUE", "URI"))
    elif value_type == "URL":
        out.append(("VALUE", "URI"))
    elif value_type:
        out.append(("X-VCAL-VALUE", value_type))
    return Prop("ATTACH", tuple((k, quote_param(v)) for k, v in out), value)


def attach_out(prop: Prop) -> tuple[list[tuple[str, str]], str]:
    params = [
        (k, v or "") for k, v in _unquoted(prop) if k not in ("VALUE", "X-VCAL-VALUE", "ENCODING")
    ]
    value = prop.value
    value_type = (prop.param("VALUE") or "").upper()
    kept_type = prop.param("X-VCAL-VALUE")
    if value.lower().startswith("cid:"):
        params.append(("VALUE", "CONTENT-ID"))
        value = value[4:]
    elif kept_type:
        params.append(("VALUE", kept_type))
    elif value_type == "URI":
        params.append(("VALUE", "URL"))
    return params, value


def alarm_to_ical(prop: VProp, entry: EntryConverter) -> Component | None:
    fields = split_unescaped(prop.text, ";")
    if not any(f.strip() for f in fields):
        return None
    runtime_text = fields[0].strip()
    if not runtime_text:
        entry.keep_aside(prop, f"{prop.name} without a time; kept aside")
        return None
    try:
        runtime = parse_vcal(runtime_text)
    except TimeError as e:
        from calsync.items.vcal.to_ical import EntryError

        raise EntryError(prop.line, f"{prop.name}: {e}") from None
    alarm = Component("VALARM", [Prop("ACTION", (), _ACTIONS[prop.name])])
    anchor, related_end = entry.alarm_anchor()
    frame = entry.frame
    if anchor is not None:
        delta = frame.absolute(runtime) - frame.absolute(anchor)
        params: tuple[tuple[str, str | None], ...] = (("RELATED", "END"),) if related_end else ()
        alarm.props.append(Prop("TRIGGER", params, fmt_duration(delta)))
    else:
        converted = frame.convert(
            runtime if isinstance(runtime, datetime) else datetime.combine(runtime, time())
        )
        assert isinstance(converted, datetime)
        text = fmt_utc(converted) if converted.tzinfo is not None else fmt_ical(converted)[1]
        alarm.props.append(Prop("TRIGGER", (("VALUE", "DATE-TIME"),), text))
    alarm.props += alarm_body(prop.name, fields, prop.other_params())
    return alarm


def alarm_body(name: str, fields: list[str], extra: list[tuple[str, str]]) -> list[Prop]:
    """The VALARM properties after ACTION and TRIGGER, from a device alarm's fields
    (runtime;snooze;repeat;content...) and parameters."""
    props: list[Prop] = []
    snooze = fields[1].strip() if len(fields) > 1 else ""
    repeat = fields[2].strip() if len(fields) > 2 else ""
    ok_pair = False
    if snooze and repeat and repeat != "0":
        try:
            parse_duration(snooze)
            ok_pair = int(repeat) > 0
        except (TimeError, ValueError):
            ok_pair = False
    if ok_pair:
        props += [Prop("DURATION", (), snooze.upper()), Prop("REPEAT", (), str(int(repeat)))]
    elif snooze or (repeat and repeat != "0"):
        props.append(Prop(REPEAT_KEPT, (), ical_escape(f"{snooze};{repeat}")))
    content = [vcal_unescape(f) for f in fields[3:]]
    if name in ("AALARM", "PALARM"):
        joined = ";".join(content).strip()
        if joined:
            props.append(attach_in(joined, extra))
        elif extra:
            props.append(Prop("X-CALSYNC-VCAL-PARAMS", (), ical_escape(_encode_params(extra))))
    elif name == "DALARM":
        params2 = tuple((k, quote_param(v)) for k, v in extra)
        text = ";".join(content)
        if len(fields) > 3 or extra:  # "time;;;" has a display string, if empty
            props.append(Prop("DESCRIPTION", params2, ical_escape(text)))
    else:  # MALARM: address;note
        address = content[0].strip() if content else ""
        note = ";".join(content[1:])
        if address:
            props.append(Prop("ATTENDEE", (), "mailto:" + address))
        props.append(Prop("SUMMARY", (), ical_escape(note)))
        params2 = tuple((k, quote_param(v)) for k, v in extra)
        props.append(Prop("DESCRIPTION", params2, ical_escape(note)))
    return props


def alarm_to_vcal(
    alarm: Component,
    start: TimeValue | None,
    end: TimeValue | None,
    fmt_time: Callable[[TimeValue], str],
) -> tuple[str, list[tuple[str, str]], str]:
    """(property name, parameters, value) of a VALARM; AlarmError if vCalendar has none."""
    action = (alarm.value("ACTION") or "").strip().upper()
    name = _ALARM_NAMES.get(action)
    if name is None:
        raise AlarmError(f"alarm with ACTION:{action or '(none)'}")
    trigger = alarm.get("TRIGGER")
    if trigger is None:
        raise AlarmError("alarm without TRIGGER")
    absolute = (trigger.param("VALUE") or "").upper() == "DATE-TIME" or trigger.value.strip()[
        :1
    ].isdigit()
    if absolute:
        from calsync.items.vcal.times import parse_ical

        try:
            runtime: TimeValue = parse_ical(trigger.value)
        except TimeError as e:
            raise AlarmError(f"TRIGGER: {e}") from None
    else:
        try:
            delta = parse_duration(trigger.value)
        except TimeError as e:
            raise AlarmError(f"TRIGGER: {e}") from None
        related_end = (trigger.param("RELATED") or "").upper() == "END"
        anchor = end if related_end and end is not None else start
        if anchor is None:
            anchor = end  # relative to a DTSTART the item does not have: its due time
        if anchor is None:
            raise AlarmError("alarm relative to a missing DTSTART/DUE")
        if not isinstance(anchor, datetime):
            anchor = datetime.combine(anchor, time())
        runtime = anchor + delta
    snooze, repeat = "", ""
    if alarm.get("DURATION") is not None and alarm.get("REPEAT") is not None:
        snooze = (alarm.value("DURATION") or "").strip()
        repeat = (alarm.value("REPEAT") or "").strip()
    kept = alarm.value(REPEAT_KEPT)
    if kept is not None and not snooze:
        from calsync.items.vcal.text import ical_unescape

        pieces = ical_unescape(kept).split(";")
        snooze, repeat = pieces[0], pieces[1] if len(pieces) > 1 else ""
    fields = [fmt_time(runtime), snooze, repeat]
    params: list[tuple[str, str]] = []
    if name in ("AALARM", "PALARM"):
        attach = alarm.get("ATTACH")
        if attach is not None and (attach.param("VALUE") or "").upper() != "BINARY":
            params, content = attach_out(attach)
            fields.append(content)
        else:
            fields.append("")
            kept_params = alarm.value("X-CALSYNC-VCAL-PARAMS")
            if kept_params:
                from calsync.items.vcal.text import ical_unescape

                params = _decode_params(ical_unescape(kept_params))
    elif name == "DALARM":
        from calsync.items.vcal.text import ical_unescape

        desc = alarm.get("DESCRIPTION")
        if desc is not None:
            fields.append(vcal_escape(ical_unescape(desc.value)))
            params = [(k, v or "") for k, v in _unquoted(desc)]
    else:
        from calsync.items.vcal.text import ical_unescape

        attendee = alarm.value("ATTENDEE") or ""
        address = attendee[7:] if attendee.lower().startswith("mailto:") else attendee
        desc = alarm.get("DESCRIPTION")
        note = (
            ical_unescape(desc.value)
            if desc is not None
            else ical_unescape(alarm.value("SUMMARY") or "")
        )
        fields += [vcal_escape(address), vcal_escape(note)]
        if desc is not None:
            params = [(k, v or "") for k, v in _unquoted(desc)]
    return name, params, ";".join(fields)


def alarm_reads_back(
    alarm: Component, name: str, params: list[tuple[str, str]], value: str, anchored: bool | None
) -> bool:
    """Would this VALARM, written as ``name;params:value``, read back line for line?

    ``anchored``: what the reader relates a trigger to (True: a to-do's DUE, False:
    the start, None: nothing, so the trigger stays absolute).  An alarm this says
    False for travels whole beside its device line.
    """
    trigger = alarm.get("TRIGGER")
    action = alarm.get("ACTION")
    if trigger is None or action is None or action.params or action.value != _ACTIONS[name]:
        return False
    if anchored is None:
        if trigger.params != (("VALUE", "DATE-TIME"),) or not trigger.value.endswith("Z"):
            return False
        try:
            exact = fmt_utc(parse_vcal(trigger.value)) == trigger.value  # type: ignore[arg-type]
        except (TimeError, TypeError, ValueError):
            return False
    else:
        try:
            exact = fmt_duration(parse_duration(trigger.value)) == trigger.value
        except TimeError:
            return False
        if trigger.params != ((("RELATED", "END"),) if anchored else ()):
            return False
    if not exact or alarm.subs:
        return False
    body = alarm_body(name, split_unescaped(value, ";"), params)
    rest = [p for p in alarm.props if p is not trigger and p is not action]
    return sorted(p.to_line() for p in body) == sorted(p.to_line() for p in rest)


def _as_datetime(value: TimeValue) -> datetime:
    return value if isinstance(value, datetime) else datetime.combine(value, time())


__all__ = [
    "UTC",
    "AlarmError",
    "alarm_reads_back",
    "alarm_to_ical",
    "alarm_to_vcal",
    "attendee_to_ical",
    "attendee_to_vcal",
    "date",
    "status_to_ical",
    "status_to_vcal",
    "timedelta",
    "transp_to_ical",
    "transp_to_vcal",
]
