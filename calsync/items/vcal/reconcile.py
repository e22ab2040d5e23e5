"""What a device's copy of an entry we wrote means, given the item we wrote.

A phone's PC suite, or a phone over SyncML, hands our entries back without the
X-CALSYNC-ICAL-* lines that carried what vCalendar 1.0 cannot say.  Read alone,
such a copy looks as if the device deleted those things: a COMMENT, a rule it
cannot express, an alarm's extras, the exact TZID.  Knowing the iCalendar item
we wrote, the copy is merged three-way instead (``items.devicecopy``): base =
what the device could show of our item, ours = the item, theirs = the device's
copy.  The device's edits win; what it never saw stays as it was.
"""

from __future__ import annotations

from calsync.items.devicecopy import merge_device_copy
from calsync.items.item import Item, ItemError
from calsync.items.lines import Component
from calsync.items.vcal.shadows import VCAL_PREFIX
from calsync.items.vcal.to_ical import convert_stream
from calsync.items.vcal.to_vcal import item_to_vcal

_MADE_UP = VCAL_PREFIX + "DTSTAMP"


def device_view(item: Item) -> Item | None:
    """The item as read back from a device that kept only vCalendar's own lines."""
    try:
        data = item_to_vcal(item, companions=False)
    except ItemError:
        return None
    items, errors = convert_stream(data, "device view")
    if errors or len(items) != 1:
        return None
    return items[0]


def reconcile(written: Item, device: Item) -> Item:
    """``device`` (a copy of ``written`` read from a device) with what vCalendar
    could not carry taken from ``written``, unless the device changed it."""
    if device.uid != written.uid:
        return device
    seen = device_view(written)
    if seen is None:
        return device
    merged = merge_device_copy(
        written, _without_made_up_stamps(seen.tree), _without_made_up_stamps(device.tree)
    )
    return merged if merged is not None else device


def _without_made_up_stamps(cal: Component) -> Component:
    """DTSTAMPs the reader made up (a device has none): not an edit by anyone."""
    out = cal.copy()
    for comp in out.subs:
        if comp.get(_MADE_UP) is not None:
            comp.remove(_MADE_UP)
            comp.remove("DTSTAMP")
    return out
