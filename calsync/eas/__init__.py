"""Exchange ActiveSync (EAS): the protocol core of calsync's EAS server.

What the package will hold (issue #22): the WBXML code pages of ActiveSync
(generalising the SyncML WBXML codec), the sans-I/O session core (Provision,
FolderSync, Sync, Ping... on the shared device-sync core) and the mapping of
EAS calendar items and tasks to iCalendar.  It is a protocol-core layer: it
imports ``calsync.items`` and libraries, never gateway, cli or syncml.

What exists now is the mapping, pure and complete on its own:

- ``model``: typed, wire-neutral appointments, exceptions, recurrences and
  tasks, one attribute per MS-ASCAL / MS-ASTASK element;
- ``timezone``: the Timezone blob (TIME_ZONE_INFORMATION) <-> zones;
- ``recurrence``: EAS Recurrence <-> RRULE (what EAS cannot say is refused,
  never sent as a wrong rule);
- ``calendar``: appointments <-> VEVENTs with their overrides, 16.x
  single-occurrence edits and deletes;
- ``tasks``: tasks <-> VTODOs;
- ``merge``: a device's edit applied onto the full item, so that what EAS
  cannot carry survives a phone (``items.devicecopy``, shared with the
  vCalendar mirror);
- ``props``: options and the property helpers both mappings use.

``FIDELITY.md`` is the field table (EAS element <-> iCalendar, and what stays
in calsync).
"""
