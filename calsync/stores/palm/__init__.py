"""The ``palm`` store: a folder of Palm databases, as a HotSync backup or an
emulator leaves them, read and written like a HotSync conduit would.

Why: the original device-sync brief asked for a Palm conduit; a live HotSync
stack no longer runs on current systems, but a Palm's data lives on as
``.pdb`` files.  The modules:

- ``pdb``       the container (header, record list, AppInfo block);
- ``datebook``  Datebook and Palm OS 5 Calendar records;
- ``pdat``      what a Calendar record adds (location, blobs);
- ``todo``      To Do records; ``tasks`` Palm OS 5 Tasks records (read only);
- ``ical``      records <-> iCalendar, and merging a Palm's edit onto the item
                calsync wrote;
- ``store``     the ``Store`` (identity, versions, flags, writes).

Public sources the layouts follow: the Palm File Format Specification,
pilot-link's libpisock (``pi-file.c``, ``datebook.c``, ``calendar.c``,
``todo.c``), the Perl modules Palm::PDB, Palm::Datebook, Palm::ToDo and
Palm::StdAppInfo (Debian's ``libpalm-perl``, which the tests use as the
oracle); for Tasks see ``tasks``.  No code was taken from them.
"""
