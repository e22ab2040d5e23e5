"""CalDAV: our own thin client (httpx + safe XML) and the ``caldav`` store.

``client`` makes requests, ``xml`` builds and parses bodies, ``hrefs`` gives
every resource one id, ``discovery`` finds the calendar, ``listing`` lists it
incrementally, ``store`` implements the Store contract on top.
"""
