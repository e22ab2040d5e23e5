"""A few thousand mutated real requests, on every endpoint, with and without credentials.

The requests: the captured SyncML messages of real devices and SyncEvolution
(and whole recorded device sessions, logged in, their later messages
mutated), CalDAV requests recorded from the python ``caldav`` library, and
what the command line sends to the control API.  Mutated by ``mutate.py``
from a fixed seed (the same requests every run; a failure names the sample,
the mutations and the seed).

Required: never a 5xx but 503 (shedding load), never a traceback in an
answer, every request answered, the daemon alive with its memory bounded;
afterwards a whole legitimate session on every endpoint succeeds.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.adversarial.clients import Answer, Legit, send
from tests.adversarial.endpoints import ENDPOINTS, Endpoint, Sample
from tests.adversarial.mutate import Mutator
from tests.adversarial.target import Target

pytestmark = [pytest.mark.adversarial, pytest.mark.slow]

SEED = 1919
# requests per endpoint: single mutated requests, and mutated requests in sessions
COUNTS = {
    "/sync": (1200, 300),
    "/dav/": (1000, 0),
    "/feeds/": (200, 0),
    "/api/": (400, 0),
    "/ (web page)": (400, 0),
}
CREDENTIALS_EVERY = 3  # one request in three goes without credentials
WORKERS = 32  # a failed login waits 1 s for its answer (the server holds no thread for it)
LOG_PER_REQUEST = 1024  # bytes of log one request may add, on average


def structure(sample: Sample) -> str | None:
    ctype = sample.headers.get("Content-Type", sample.headers.get("content-type", ""))
    if "wbxml" in ctype:
        return "wbxml"
    if "xml" in ctype:
        return "xml"
    if "json" in ctype:
        return "json"
    return None


def mutated_requests(
    target: Target, endpoint: Endpoint, mutator: Mutator, count: int
) -> list[tuple[str, Sample]]:
    samples = endpoint.samples(target)
    assert samples, f"no samples for {endpoint.name}"
    out = []
    for n in range(count):
        sample = mutator.rng.choice(samples)
        what, body = mutator.mutate(sample.body, structure(sample))
        path = sample.path
        if mutator.rng.random() < endpoint.mutate_path:  # now and then the path too
            _, mutated = mutator.mutate(path.encode(), None)
            path = "/" + mutated.decode("latin-1").lstrip("/").replace(" ", "%20")
            path = "".join(c if 0x21 <= ord(c) < 0x7F else f"%{ord(c):02X}" for c in path)
            what += "+path"
        headers = dict(sample.headers)
        if n % CREDENTIALS_EVERY:
            headers.update(endpoint.credentials(target))
        else:
            what += " (no credentials)"
        out.append(
            (f"{sample.name} {what}", Sample(sample.name, sample.method, path, headers, body))
        )
    return out


def bad(answer: Answer) -> bool:
    return (
        answer.status is None
        or (answer.status >= 500 and answer.status != 503)
        or b"Traceback" in answer.body
    )


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.name for e in ENDPOINTS])
def test_mutated_requests_never_break_the_daemon(
    target: Target, legit: Legit, endpoint: Endpoint
) -> None:
    single, in_sessions = COUNTS[endpoint.name]
    mutator = Mutator(SEED + ENDPOINTS.index(endpoint))
    requests = mutated_requests(target, endpoint, mutator, single)

    def one(item: tuple[str, Sample]) -> tuple[str, Answer]:
        what, s = item
        return what, send(target, s.method, s.path, headers=s.headers, body=s.body)

    log_before = target.log_size()
    started = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        answers = list(pool.map(one, requests))
    if endpoint.conversations is not None and in_sessions:
        answers += endpoint.conversations(target, mutator, in_sessions)
    took = time.monotonic() - started
    failures = [f"{what}: {a}" for what, a in answers if bad(a)]
    assert not failures, f"{len(failures)} of {len(answers)} (seed {SEED}):\n" + "\n".join(
        failures[:10]
    )
    codes = sorted({a.status for _, a in answers if a.status is not None})
    print(f"{endpoint.name}: {len(answers)} requests in {took:.1f} s, statuses {codes}")
    target.check_bounded(f"{len(answers)} mutated requests to {endpoint.name}")
    target.check_log(log_before, per_request=LOG_PER_REQUEST, requests=len(answers))
    # a device that once failed (its first contact) is refused while the failures of
    # the whole attack exhaust the overall budget, which refills one a second
    time.sleep(2)
    for ep in ENDPOINTS:
        if ep.state_touch is not None:
            ep.state_touch(legit)
        ep.probe(legit)
