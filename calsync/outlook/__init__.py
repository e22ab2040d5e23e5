"""Outlook data files (.pst / .ost) as iCalendar: read only.

Modules (layers: ``pst`` knows the file, ``recurrence`` the series blob,
``mapping`` turns messages into items through ActiveSync's model, ``store``
is the ``pst`` store and ``calsync import``'s reader):

- ``pst``         libpff access: folders, messages, MAPI properties by tag or
                  by named property (the name-to-id map read here);
- ``recurrence``  PidLidAppointmentRecur / PidLidTaskRecurrence blobs;
- ``mapping``     appointments and tasks -> items (``eas.calendar`` and
                  ``eas.tasks`` write the iCalendar);
- ``store``       ``PstStore`` (``type = "pst"``) and ``read_items``.

Nothing is ever written to an Outlook file.
"""
