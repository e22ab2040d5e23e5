"""The calendar item model: parsing, canonical hashing, merging, conversion.

``Item`` is one iCalendar object resource (one UID with its overrides and
VTIMEZONEs).  ``lines`` is a light lossless tree used for merging and
conversion; ``split`` finds components in big streams quickly; ``canonical``
hashes content while ignoring serialization churn.
"""

from calsync.items.item import Item, ItemError, items_from_stream, loads_one

__all__ = ["Item", "ItemError", "items_from_stream", "loads_one"]
