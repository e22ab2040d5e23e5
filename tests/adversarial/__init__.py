"""The standing adversarial suite (issue #19): ``calsync serve`` attacked on every endpoint.

A real daemon runs under a memory limit with every endpoint enabled
(``target.py``); ``endpoints.py`` lists the endpoints, each with how to log
in, a legitimate request, its bombs and real requests to mutate.  The tests:

* ``test_bombs.py``: every bomb of every endpoint, each answered quickly
  with the right refusal, the daemon alive, its peak memory within 200 MB of
  its memory at rest, the endpoint serving on;
* ``test_mutations.py``: a few thousand mutated real requests (SyncML
  captures, recorded CalDAV requests, the command line's API requests), with
  and without credentials: never a 5xx but 503, never a traceback, and
  afterwards a whole legitimate session on every endpoint;
* ``test_crowd.py``: a legitimate request answered in under a second while
  200 slow or unauthenticated connections are open;
* ``test_traces.py``: after sessions and attacks on every endpoint, the state
  is owner-only and the log is bounded and holds no credential.

Every test is marked ``adversarial`` (``pytest -m adversarial`` runs the
suite alone) and ``slow``.
"""
