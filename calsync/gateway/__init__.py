"""The HTTP gateway: one ASGI application (starlette on uvicorn).

``app.create_app`` mounts the routes of feature modules (today ``syncml``:
the SyncML endpoint for devices at ``/sync``); ``server`` runs it.  Protocol
logic stays in the features' sans-I/O cores; this package only moves bytes.
"""
