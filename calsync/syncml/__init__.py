"""SyncML (OMA DS 1.1/1.2) for devices: a sans-I/O core.

Layers, bottom up, none of them doing I/O:

- ``model``      the element tree both codecs produce (``Node``) and the typed
                 message/command model built from it (``Message``, ``Status``...);
- ``xml_codec``  SyncML as XML (safe parser: no entities, no DTD fetch, limits);
- ``wbxml``      SyncML as WBXML (SyncML/MetInf/DevInf code pages, string
                 tables, opaque data, nested DevInf documents);
- ``codec``      picks one of the two by HTTP content type;
- ``devinf``     device information: ours to advertise, theirs to remember;
- ``auth``       syncml:auth-basic and syncml:auth-md5 (nonces, challenges);
- ``session``    the server's session state machine (packages 1-6);
- ``mirror``     what a device holds, as a ``calsync.stores.Store`` over SQLite,
                 so the ordinary sync engine runs between a device and a store.

Codecs, model, auth and devinf know nothing of the server role, so a SyncML
client can be built on them.
"""
