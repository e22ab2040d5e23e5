"""Thunderbird (Lightning) calendars: find them, read them, write them safely.

Modules, each with one job:

- ``profiles``: Thunderbird's data dirs per platform, profiles.ini/installs.ini;
- ``prefs``: the calendar registry in prefs.js;
- ``schema``: the verified database schema (version 23) and flag bits;
- ``times``: PRTime integers + timezone columns <-> iCalendar dates;
- ``rows``: the rows of one item, and their hash (the item's version);
- ``read``: database rows -> iCalendar, as Thunderbird reads them;
- ``write``: iCalendar -> rows -> database, as Thunderbird writes them;
- ``running``: is Thunderbird running on a profile (its lock, only queried);
- ``snapshot``: a consistent copy of the database to read from;
- ``queue``: changes waiting for Thunderbird to quit;
- ``store``: the ``thunderbird`` store type;
- ``discovery``: installations, profiles and calendars for ``calsync discover``.

What survives a trip through Thunderbird, verified with the real one:
FIDELITY.md next to this file.  Facts behind all this:
../shared/notes/thunderbird-storage.md.
"""
