"""The CalDAV endpoint: calsync's stores served to phones and Thunderbird over CalDAV.

Radicale does the protocol (used as a library, ``app``); calsync provides
its storage (``storage``: stores as a user's calendars), the write path with
history and locks (``service``), what it remembers per store (``state``:
sync tokens, client-chosen hrefs, properties), ``[caldav]`` (``config``) and
the per-request glue (``context``).  ``gateway.caldav`` mounts it at /dav/.
``thunderbird`` points a Thunderbird profile at it (``calsync thunderbird
connect``).
"""
