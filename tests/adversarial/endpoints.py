"""The daemon's network endpoints, and for each one: how to log in, a legitimate
request, the bombs, and the real requests to mutate.  One entry per endpoint.

Every test of the suite walks ``ENDPOINTS``, so an endpoint added here is
attacked by all of them: each bomb of its own and the ones every endpoint
gets (``common_attacks``: huge headers, a malformed ``Basic``, 49 MB bodies
without a login, a web page's Origin, password guessing), mutations of its
samples with and without credentials, slow and unauthenticated connections
around its legitimate request, its state files' modes and the log.

How to add an endpoint (say it lands as a feature of ``gateway/``):

* ``Endpoint(name, path, ...)``: ``credentials`` returns the headers of a valid
  login (``{}`` if the body carries them, as SyncML's does); ``guess`` the
  headers and body of a request with a wrong password (the n-th);
  ``refused`` the statuses of a request without a valid login; ``probe``
  makes one legitimate request and raises unless it succeeded (put its
  client in ``clients.Legit``);
  ``samples`` returns real requests (captures of real clients, as the SyncML
  ones come from ``/work/shared/peers``); ``attacks`` the bombs of its own
  protocol; ``state_touch`` (optional) a whole legitimate session, run before
  the state files are checked.
* ``/Microsoft-Server-ActiveSync`` (issue: ActiveSync): Basic credentials
  (``credentials`` like ``/dav/``'s, ``refused`` {401}), ``probe`` a
  ``FolderSync`` (put its client in ``clients.Legit``); samples from
  ``/work/shared/peers/eas`` (WBXML: ``mutate.wbxml_tokens`` walks any code
  page; samples need ``Content-Type: application/vnd.ms-sync.wbxml``);
  bombs: the WBXML ones of ``bombs.py`` built on the ActiveSync code pages
  (a string-table bomb, 150k deep, 2M empty elements), a ``Sync`` with 100k
  ``Add``s, ``DeviceId``/``Policy-Key`` query parameters of 500 KB, an item
  in year 9999 and one nested 10k deep, a ``Ping`` held open (counts as a
  slow connection: ``trickle``).
* ``/pair/<token>`` (the pairing page, served in clear while a pairing is
  open): ``samples`` and ``credentials`` need an open pairing (``POST
  /api/pair`` with the target's token, then the claim cookie of its first
  visit, kept in ``Target.memo`` as ``web_session`` does); ``refused`` {404,
  410}; ``path`` an unknown token; its pages are for a phone's browser
  (``browser_paths``), so the Origin attack of ``common_attacks`` expects
  them served; bombs: 100 KB tokens, a second client (410), the account page
  fetched again after the ten minutes.
* ``/feeds/`` is here (``FEEDS``) as an example of an endpoint whose
  requests have no body: ``mutate_path`` makes the mutations change the URL;
  the web page (``WEB``) of one whose login is a session and a CSRF token
  (``credentials`` opens the session; ``body_limit``: its forms are small).
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from calsync.gateway.syncml import LOGIN_MAX_BODY
from calsync.syncml import auth, codec
from calsync.syncml.model import Cred, Message, Status
from tests.adversarial import bombs
from tests.adversarial.clients import Answer, Legit, send
from tests.adversarial.mutate import Mutator
from tests.adversarial.target import (
    DAV_PASSWORD,
    DAV_USER,
    FEED,
    SYNCML_ACCOUNT,
    SYNCML_PASSWORD,
    Target,
)
from tests.conftest import event
from tests.syncml.scripted import HttpDevice, add, alert, sync
from tests.syncml.traces import DEVICES, all_messages, label

WBXML = {"Content-Type": codec.WBXML_TYPE}
XML = {"Content-Type": codec.XML_TYPE}
MB = 1_000_000


@dataclass(frozen=True)
class Sample:
    """A real request (its body is what gets mutated)."""

    name: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Attack:
    """Requests sent together; every answer's status must be in ``expect`` and come
    within ``within`` seconds (``None`` in ``expect``: closing unanswered is fine)."""

    name: str
    run: Callable[[Target], list[Answer]]
    expect: frozenset[int | None]
    within: float = 10.0
    check: Callable[[list[Answer]], None] | None = None  # anything more to require


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str  # where its requests go
    method: str  # the method of its bodies
    content_type: str  # of its bodies
    credentials: Callable[[Target], dict[str, str]]
    guess: Callable[[int], tuple[dict[str, str], bytes]]  # the n-th wrong password
    refused: frozenset[int]  # a request without credentials, or with wrong ones
    probe: Callable[[Legit], object]
    samples: Callable[[Target], list[Sample]]
    attacks: tuple[Attack, ...] = ()
    state_touch: Callable[[Legit], object] | None = None
    # whole conversations of real clients, logged in, with later requests mutated:
    # (target, mutator, how many requests) -> (what was sent, its answer)
    conversations: Callable[[Target, Mutator, int], list[tuple[str, Answer]]] | None = None
    throttled: bool = True  # does guessing from one (loopback) address end in 429?
    # a body that is fine so far however slowly it comes: its start, then a piece repeated
    # (None: its requests have no body; slow clients dawdle over the head instead)
    trickle: tuple[bytes, bytes] | None = (b"", b" ")
    mutate_path: float = 0.05  # how often a mutation changes the path too (or only it)
    body_limit: int = 60_000  # a body this long is accepted (slow bodies announce it)


def in_parallel(*calls: Callable[[], Answer]) -> list[Answer]:
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda c: c(), calls))


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- attacks every endpoint gets ---------------------------------------------------------

HUGE = frozenset({400, 413, 414, 431, None})  # refused by the HTTP layer (or closed)


def common_attacks(ep: Endpoint) -> tuple[Attack, ...]:
    """What every endpoint must withstand, built from its path and method."""
    ct = {"Content-Type": ep.content_type}

    def req(**kw: object) -> Callable[[Target], list[Answer]]:
        return lambda t: [send(t, ep.method, ep.path, **kw)]  # type: ignore[arg-type]

    def unauthenticated_uploads(t: Target) -> list[Answer]:
        """8 bodies of 49 MB at once, without (or with wrong) credentials."""
        calls = [
            lambda n=n: send(
                t,
                ep.method,
                ep.path,
                headers={**ct, "Authorization": basic(DAV_USER, f"guess-{n}")} if n % 2 else ct,
                body=b"X" * (49 * MB),
            )
            for n in range(8)
        ]
        return in_parallel(*calls)

    def guessing(t: Target) -> list[Answer]:
        """30 wrong passwords from one address, at once."""
        source = t.source()
        return in_parallel(
            *[
                lambda n=n: send(
                    t,
                    ep.method,
                    ep.path,
                    headers={**ct, **ep.guess(n)[0]},
                    body=ep.guess(n)[1],
                    source=source,
                )
                for n in range(30)
            ]
        )

    def throttled(answers: list[Answer]) -> None:
        codes = [a.status for a in answers]
        if ep.throttled:
            assert codes.count(429) >= 15, codes
        else:
            assert 429 not in codes, codes
        if ep.guess(0)[1]:  # the credentials are in the body: SyncML
            syncml_refused_login(answers)

    return (
        Attack("1 MB header", req(headers={**ct, "X-Junk": "j" * MB}), HUGE),
        Attack(
            "20k headers",
            req(headers={**ct, **{f"X-H{n}": "v" * 40 for n in range(20_000)}}),
            HUGE,
        ),
        Attack("1 MB URL", lambda t: [send(t, ep.method, ep.path + "?" + "q" * MB)], HUGE),
        Attack(
            "Authorization: Basic !!!!",
            req(headers={**ct, "Authorization": "Basic !!!!"}, body=ep.guess(0)[1]),
            ep.refused,
        ),
        Attack(
            "Basic with a 500 KB user name",
            req(headers={**ct, "Authorization": basic("u" * 500_000, "x")}),
            HUGE,
        ),
        Attack(
            "49 MB bodies without a login, 8 at once",
            unauthenticated_uploads,
            ep.refused | {400, 413, None},  # refused from its size (the page says 400)
            within=15,
        ),
        Attack(
            "a web page's request with valid credentials",
            lambda t: [
                send(
                    t,
                    ep.method,
                    ep.path,
                    headers={**ct, **ep.credentials(t), "Origin": "http://evil.example"},
                )
            ],
            frozenset({403}),
        ),
        Attack(
            "password guessing from one address",
            guessing,
            ep.refused | {429},
            within=5,
            check=throttled,
        ),
    )


def basic_guess(user: str) -> Callable[[int], tuple[dict[str, str], bytes]]:
    """Wrong passwords for ``user`` in a Basic header."""
    return lambda n: ({"Authorization": basic(user, f"guess-{n}")}, b"")


# -- /sync -------------------------------------------------------------------------------


def syncml(answer: Answer) -> Message:
    assert answer.status == 200, answer
    ctype = answer.headers.get("content-type")
    return codec.decode(answer.body, codec.encoding_of(ctype, answer.body))


def statuses(msg: Message, cmd: str) -> list[int]:
    return [c.code for c in msg.commands if isinstance(c, Status) and c.cmd == cmd]


def attack_device(t: Target, name: str, *, encoding: str = "wbxml") -> HttpDevice:
    """A device of the legitimate account, from an address of its own."""
    dev = HttpDevice(
        f"{t.url}/sync",
        device=name,
        user=SYNCML_ACCOUNT,
        password=SYNCML_PASSWORD,
        encoding=encoding,
    )
    dev.http.close()
    dev.http = httpx.Client(transport=httpx.HTTPTransport(local_address=t.source()), timeout=60)
    return dev


def answer_of(r: httpx.Response) -> Answer:
    return Answer(r.status_code, dict(r.headers), r.content, r.elapsed.total_seconds())


def post_syncml(t: Target, body: bytes, headers: dict[str, str] = WBXML) -> list[Answer]:
    return [send(t, "POST", "/sync", headers=headers, body=body)]


def simultaneous_logins(t: Target) -> list[Answer]:
    """150 logins of 2 MB at once, each from its own address: each body was held
    while the logins were checked two at a time (375 MB, and 30 s to answer)."""
    body = bombs.empty_elements(2_000_000)
    return in_parallel(*[lambda: post_syncml(t, body)[0] for _ in range(150)])


def in_session(t: Target, name: str, body: bytes, headers: dict[str, str]) -> list[Answer]:
    """A logged-in device's next message is ``body`` (sent in its session).  ``name``:
    a device ID no other attack uses (a second device object of the same ID would not
    know its nonce: its first login would be a wrong guess)."""
    dev = attack_device(t, name)
    try:
        dev.login([alert(201)])
        assert "sessionid=" in dev.target
        return [answer_of(dev.http.post(dev.target, content=body, headers=headers))]
    finally:
        dev.http.close()


def huge_device_ids(size: int) -> Callable[[Target], list[Answer]]:
    """20 logins whose device IDs are ``size`` characters (500 KB ones grew
    syncml.sqlite by 201 MB; now a login that large is refused from its size, and
    a smaller one from the ID's)."""

    def attack(t: Target) -> list[Answer]:
        answers = []
        for n in range(20):
            dev = HttpDevice(f"{t.url}/sync", device=f"{n}-" + "x" * size)
            answers += post_syncml(t, dev.encode(dev.header("md5"), [alert(201)]), XML)
        return answers

    return attack


def syncml_bombs() -> list[Attack]:
    """Each decoding bomb as a login (nothing logged in: refused from its size over
    ``LOGIN_MAX_BODY``, else decoded and refused under the budget) and in a session
    of a logged-in device (decoded under the same budget, up to MaxMsgSize)."""
    found = [
        ("WBXML string-table bomb, 120 KB", bombs.str_t_bomb(60_000, 30_000), WBXML),
        ("WBXML string-table bomb, 2 MB", bombs.str_t_bomb(1_000_000, 500_000), WBXML),
        ("nested DevInf bomb", bombs.nested_devinf_bomb(60_000, 30_000), WBXML),
        ("WBXML, 2M empty elements", bombs.empty_elements(2_000_000), WBXML),
        ("WBXML, 100k empty elements", bombs.empty_elements(100_000), WBXML),
        ("WBXML nested 150k deep", b"\x02\xa4\x01\x6a\x00" + b"\x6d\x01" * 150_000, WBXML),
        ("XML billion laughs", bombs.XML_LAUGHS, XML),
        ("XML external entity", bombs.XML_EXTERNAL, XML),
        (
            "XML text bomb, 2 MB of text",
            b"<SyncML><SyncHdr><VerDTD>" + b"x" * 2_000_000 + b"</VerDTD></SyncHdr></SyncML>",
            XML,
        ),
        ("XML, 490k elements", b"<SyncML>" + b"<a/>" * 490_000 + b"</SyncML>", XML),
        ("XML, 60k elements", b"<SyncML>" + b"<a/>" * 60_000 + b"</SyncML>", XML),
        ("XML nested 150k deep", bombs.deep_xml(b"SyncML", 150_000), XML),
        ("XML nested 20k deep", bombs.deep_xml(b"SyncML", 20_000), XML),
    ]
    attacks = []
    for n, (name, body, headers) in enumerate(found):
        login = frozenset({413 if len(body) > LOGIN_MAX_BODY else 400})
        attacks.append(
            Attack(name, lambda t, b=body, h=headers: post_syncml(t, b, h), login)  # type: ignore[misc]
        )
        attacks.append(
            Attack(
                f"{name}, in a session",
                lambda t, b=body, h=headers, n=n: in_session(t, f"bomber-{n}", b, h),  # type: ignore[misc]
                frozenset({400}),
            )
        )
    return attacks


def bad_basic_cred(t: Target) -> list[Answer]:
    dev = HttpDevice(f"{t.url}/sync", device="bad-cred", encoding="wbxml")
    header = dev.header()
    header.cred = Cred(auth.BASIC, "b64", "!!!!")
    return post_syncml(t, dev.encode(header, [alert(201)]))


def poison_items(t: Target) -> list[Answer]:
    """A logged-in device adds an item in year 9999, one nested 10k deep, and a good one."""
    dev = attack_device(t, "poisoner")
    try:
        dev.login([alert(201)])
        body = dev.encode(
            dev.header(),
            [
                sync(
                    [
                        add("1", bombs.far_event("far-9999")),
                        add("2", bombs.nested_event("nested-10k")),
                        add("3", event("poisoner-fine", "Fine")),
                    ]
                )
            ],
        )
        return [answer_of(dev.post(body))]
    finally:
        dev.http.close()


def long_line_item(t: Target) -> list[Answer]:
    """A logged-in device adds an item whose one line (900 KB) is no property."""
    dev = attack_device(t, "long-liner")
    try:
        dev.login([alert(201)])
        item = event("sml-long-line", "x").replace(b"DTSTAMP:", b"X" * 900_000)
        return [answer_of(dev.post(dev.encode(dev.header(), [sync([add("1", item)])])))]
    finally:
        dev.http.close()


def poison_refused_alone(answers: list[Answer]) -> None:
    assert statuses(syncml(answers[0]), "Add") == [400, 400, 201]


def syncml_guess(n: int) -> tuple[dict[str, str], bytes]:
    """A login with a wrong password: in the body, as SyncML's credentials are."""
    dev = HttpDevice(
        "http://127.0.0.1/sync",
        device=f"guesser-{n}",
        user=SYNCML_ACCOUNT,
        password=f"guess-{n}",
        encoding="wbxml",
    )
    return {}, dev.encode(dev.header("basic"), [alert(201)])


def syncml_refused_login(answers: list[Answer]) -> None:
    for a in answers:
        if a.status == 200:
            assert set(statuses(syncml(a), "SyncHdr")) <= {401, 407}, a


def syncml_samples(t: Target) -> list[Sample]:
    return [
        Sample(label(p), "POST", "/sync", WBXML if p.suffix == ".wbxml" else XML, p.read_bytes())
        for p in all_messages()
    ]


CONVERSATIONS = (
    "sonyericsson-p900-horde",
    "funambol-outlook-3.0.15-calendar-horde",
    "funambol-pocketpc-calendar-horde",
)


def conversation_messages() -> list[list[Path]]:
    """Each recorded session of a real device, its messages in order (the first one
    logs in with the basic credentials of a ``CAPTURE_ACCOUNTS`` account)."""
    sessions = []
    for folder in CONVERSATIONS:
        by_session: dict[int, list[Path]] = {}
        for p in sorted((DEVICES / folder).glob("syncml_client_*.xml")):
            by_session.setdefault(int(p.stem[-2]), []).append(p)
        sessions += [paths for _, paths in sorted(by_session.items())]
    return sessions


def syncml_conversations(t: Target, mutator: Mutator, count: int) -> list[tuple[str, Answer]]:
    """Recorded sessions replayed: the login as recorded, then the device's later
    messages mutated, each posted to the session's RespURI while it lasts."""
    sessions = conversation_messages()
    assert sessions, f"no recorded device sessions under {DEVICES}"
    out: list[tuple[str, Answer]] = []
    while len(out) < count:
        paths = mutator.rng.choice(sessions)
        source = t.source()
        login = send(t, "POST", "/sync", headers=XML, body=paths[0].read_bytes(), source=source)
        out.append((label(paths[0]), login))
        if login.status != 200:
            continue
        msg = syncml(login)
        if msg.header.resp_uri is None:
            continue
        path = "/sync?" + msg.header.resp_uri.partition("?")[2]
        for p in paths[1:]:
            what, body = mutator.mutate(p.read_bytes(), "xml")
            answer = send(t, "POST", path, headers=XML, body=body, source=source)
            out.append((f"{label(p)} {what}", answer))
            if answer.status != 200:
                break
    return out


def syncml_session(legit: Legit) -> object:
    """A whole session of the legitimate phone: a slow sync with an item of its own."""
    phone = legit.phone
    phone.add(VCAL_ITEM % os.urandom(4).hex().encode())
    result = phone.sync(201)
    assert result.finished and set(result.item_status.values()) <= {200, 201}, result
    return result


VCAL_ITEM = (
    b"BEGIN:VCALENDAR\r\nVERSION:1.0\r\nBEGIN:VEVENT\r\nUID:legit-%s\r\n"
    b"SUMMARY:From the phone\r\nDTSTART:20250301T100000Z\r\nDTEND:20250301T110000Z\r\n"
    b"END:VEVENT\r\nEND:VCALENDAR\r\n"
)

SYNCML = Endpoint(
    name="/sync",
    path="/sync",
    method="POST",
    content_type=codec.WBXML_TYPE,
    credentials=lambda t: {},  # in the body
    guess=syncml_guess,
    refused=frozenset({200, 415}),  # a SyncML 401/407 inside a 200 (checked), no media type: 415
    probe=Legit.login,
    samples=syncml_samples,
    state_touch=syncml_session,
    conversations=syncml_conversations,
    trickle=(b"\x02\xa4\x01\x6a\x00\x6d\x6c\x71\x03", b"1"),  # SyncML SyncHdr VerDTD "111...
    attacks=(
        *syncml_bombs(),
        Attack("500 KB device IDs, 20 logins", huge_device_ids(500_000), frozenset({413})),
        Attack("200 KB device IDs, 20 logins", huge_device_ids(200_000), frozenset({400})),
        Attack("150 logins of 2 MB at once", simultaneous_logins, frozenset({413})),
        Attack(
            "SyncML basic credentials !!!!",
            bad_basic_cred,
            frozenset({200}),
            check=syncml_refused_login,
        ),
        Attack(
            "year 9999 and nested 10k deep by SyncML Add",
            poison_items,
            frozenset({200}),
            check=poison_refused_alone,
        ),
        Attack(
            "an Add with a 900 KB line that is no property",
            long_line_item,
            frozenset({200}),
            check=lambda answers: None,
        ),
    ),
)


# -- /dav/ -------------------------------------------------------------------------------

DAV_AUTH = {"Authorization": basic(DAV_USER, DAV_PASSWORD)}
CALENDAR = f"/dav/{DAV_USER}/captures/"


def dav(
    method: str, body: bytes, path: str = CALENDAR, **headers: str
) -> Callable[[Target], list[Answer]]:
    return lambda t: [
        send(t, method, path, headers={**DAV_AUTH, "Depth": "1", **headers}, body=body)
    ]


def year_query(start: str = "20250101T000000Z", end: str = "20260101T000000Z") -> bytes:
    return (
        '<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" '
        'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
        f'<C:calendar-data><C:expand start="{start}" end="{end}"/></C:calendar-data></D:prop>'
        '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        f'<C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter>'
        "</C:filter></C:calendar-query>"
    ).encode()


def secondly_then_report(t: Target) -> list[Answer]:
    """An event repeating every second, then a one-year REPORT with expansion (it ran
    for minutes at 100% CPU)."""
    put = send(
        t,
        "PUT",
        f"{CALENDAR}every-second.ics",
        headers=DAV_AUTH,
        body=bombs.secondly_event("every-second"),
    )
    report = send(t, "REPORT", CALENDAR, headers={**DAV_AUTH, "Depth": "1"}, body=year_query())
    return [put, report]


def put_over_limit_authenticated(t: Target) -> list[Answer]:
    return in_parallel(
        *[
            lambda n=n: send(
                t, "PUT", f"{CALENDAR}big-{n}.ics", headers=DAV_AUTH, body=b"X" * (49 * MB)
            )
            for n in range(4)
        ]
    )


def dav_samples(t: Target) -> list[Sample]:
    from tests.adversarial.recorded import caldav_requests

    return caldav_requests()


DAV = Endpoint(
    name="/dav/",
    path=CALENDAR,
    method="PROPFIND",
    content_type="application/xml",
    credentials=lambda t: dict(DAV_AUTH),
    guess=basic_guess(DAV_USER),
    refused=frozenset({401}),
    probe=Legit.propfind,
    samples=dav_samples,
    state_touch=lambda legit: legit.dav_session(),
    trickle=(b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop>', b"<d:getetag/>"),
    attacks=(
        Attack(
            "PROPFIND nested 150k deep",
            dav("PROPFIND", bombs.deep_propfind(150_000)),
            frozenset({400}),
        ),
        Attack(
            "REPORT nested 150k deep",
            dav("REPORT", bombs.deep_report(150_000, "c:f")),
            frozenset({400}),
        ),
        Attack(
            "PROPFIND nested 20k deep",
            dav("PROPFIND", bombs.deep_propfind(20_000)),
            frozenset({400}),
        ),
        Attack("PROPFIND billion laughs", dav("PROPFIND", bombs.LAUGHS), frozenset({400})),
        Attack("PROPFIND external entity", dav("PROPFIND", bombs.XXE), frozenset({400})),
        Attack("REPORT parameter entity", dav("REPORT", bombs.PARAM_ENTITY), frozenset({400})),
        Attack(
            "49 MB PUTs with the password, 4 at once",
            put_over_limit_authenticated,
            frozenset({413, None}),
        ),
        Attack(
            "FREQ=SECONDLY event, then a one-year REPORT",
            secondly_then_report,
            frozenset({201, 204, 207}),
            within=5,
        ),
        Attack(
            "PUT of an event in year 9999",
            dav("PUT", bombs.far_event("far-9999"), f"{CALENDAR}far.ics"),
            frozenset({400, 412}),
        ),
        Attack(
            "PUT of an event with a 3 MB line that is no property",
            dav(
                "PUT",
                event("long-line", "x").replace(b"DTSTAMP:", b"X" * 3_000_000),
                f"{CALENDAR}long.ics",
            ),
            frozenset({400}),
        ),
        Attack(
            "PUT of an event nested 10k deep",
            dav("PUT", bombs.nested_event("nested-10k"), f"{CALENDAR}nested.ics"),
            frozenset({400}),
        ),
    ),
)


# -- /feeds/ -----------------------------------------------------------------------------

FEED_PATH = f"/feeds/{FEED}.ics"


def feed_url(t: Target, token: str | None = None) -> str:
    return f"{FEED_PATH}?token={t.feed_token if token is None else token}"


def feeds_samples(t: Target) -> list[Sample]:
    """What subscribing programs send (Outlook, Google, iOS, Thunderbird): GET or
    HEAD of the URL with its token, again with the last ETag, or a Basic login."""
    url = feed_url(t)
    return [
        Sample("outlook", "GET", url, {"Accept": "text/calendar, */*"}, b""),
        Sample("google", "GET", url, {"If-None-Match": '"0123456789abcdef0123456789abcdef"'}, b""),
        Sample("ios", "HEAD", url, {}, b""),
        Sample("thunderbird", "GET", FEED_PATH, {}, b""),  # with credentials, or refused
    ]


def feed_with_secondly_event(t: Target) -> list[Answer]:
    """The feed's store gets an event repeating every second (a device may send one):
    the feed is served at once (it expands nothing)."""
    put = send(
        t,
        "PUT",
        f"/dav/{DAV_USER}/dir/every-second-feed.ics",
        headers=DAV_AUTH,
        body=bombs.secondly_event("every-second-feed"),
    )
    return [put, send(t, "GET", feed_url(t))]


FEEDS = Endpoint(
    name="/feeds/",
    path=FEED_PATH,
    method="GET",
    content_type="text/calendar",
    credentials=lambda t: dict(DAV_AUTH),  # a CalDAV user of the store; else the URL's token
    guess=basic_guess(DAV_USER),
    refused=frozenset({401}),
    probe=Legit.feed,
    samples=feeds_samples,
    state_touch=lambda legit: legit.feed_session(),
    mutate_path=1.0,  # its requests have no body: the URL and its token are what varies
    trickle=None,
    attacks=(
        Attack(
            "a 10 KB token", lambda t: [send(t, "GET", feed_url(t, "t" * 10_000))], frozenset({401})
        ),
        Attack(
            "a feed that does not exist, with the token",
            lambda t: [send(t, "GET", f"/feeds/nope.ics?token={t.feed_token}")],
            frozenset({401}),
        ),
        Attack(
            "If-None-Match with 300 ETags",
            lambda t: [
                send(t, "GET", feed_url(t), headers={"If-None-Match": ", ".join(['"x"'] * 300)})
            ],
            frozenset({200}),
        ),
        Attack(
            "an event repeating every second, then the feed",
            feed_with_secondly_event,
            frozenset({200, 201, 204}),
            within=5,
        ),
    ),
)


# -- the web page -----------------------------------------------------------------------

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def web_session(t: Target) -> tuple[str, str]:
    """A session of the page (opened by a first visit: on this machine the page asks
    no password) and its CSRF token, once per target."""
    if "web" not in t.memo:
        with httpx.Client(base_url=t.url, timeout=60) as c:
            page = c.get("/")
            assert page.status_code == 200, page.status_code
            cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found and cookie, page.text[:300]
        t.memo["web"] = (cookie, found.group(1))
    return t.memo["web"]


def web_credentials(t: Target) -> dict[str, str]:
    cookie, csrf = web_session(t)
    return {"Cookie": cookie, "X-CSRF-Token": csrf}


def web_samples(t: Target) -> list[Sample]:
    """What the page's own requests are (a browser's, as the page's tests drive it):
    the page, its live part, a conflict, an item's history, static files, and the
    forms of its buttons (with the session's CSRF token)."""
    _, csrf = web_session(t)
    return [
        Sample("page", "GET", "/", {}, b""),
        Sample("live", "GET", "/web/live", {"HX-Request": "true"}, b""),
        Sample("history", "GET", "/web/history?uid=e1", {}, b""),
        Sample("conflict", "GET", "/web/conflicts/1", {}, b""),
        Sample("htmx", "GET", "/web/static/htmx.min.js", {}, b""),
        Sample("sync", "POST", "/web/sync", FORM, f"pair=p&csrf={csrf}".encode()),
        Sample("restore", "POST", "/web/restore", FORM, f"uid=e1&version=1&csrf={csrf}".encode()),
        Sample("resolve", "POST", "/web/conflicts/1/resolve", FORM, f"keep=a&csrf={csrf}".encode()),
        Sample("pair", "POST", "/web/pair", FORM, f"account=alice&device=t&csrf={csrf}".encode()),
        Sample("revoke", "POST", "/web/devices/revoke", FORM, f"device=t&csrf={csrf}".encode()),
        Sample("login", "POST", "/web/login", FORM, b"csrf=x&user=alice&password=guess-0"),
    ]


def web_form(t: Target, body: bytes) -> list[Answer]:
    return [send(t, "POST", "/web/sync", headers={**FORM, **web_credentials(t)}, body=body)]


def web_visits(t: Target) -> list[Answer]:
    """2,000 first visits from as many addresses, 50 at a time: each opens a session
    (kept in memory, at most 1,000)."""
    with ThreadPoolExecutor(50) as pool:
        return list(pool.map(lambda _: send(t, "GET", "/"), range(2000)))


WEB = Endpoint(
    name="/ (web page)",
    path="/web/sync",  # an action: what needs a session and its CSRF token
    method="POST",
    content_type="application/x-www-form-urlencoded",
    # on this machine a first visit opens a session without a password (from the LAN
    # it needs a login over TLS: tests/gateway/test_web_security.py)
    credentials=web_credentials,
    guess=lambda n: ({"X-CSRF-Token": f"guess-{n}-{'0' * 40}"}, b"pair=p"),
    refused=frozenset({401, 403}),
    probe=Legit.web,
    samples=web_samples,
    state_touch=lambda legit: legit.web_session(),
    throttled=False,  # no password is asked on this machine: nothing to guess but a token
    mutate_path=0.3,
    body_limit=16_000,
    trickle=(b"pair=p&x=", b"a"),
    attacks=(
        Attack(
            "a form over 16 KB",
            lambda t: web_form(t, b"pair=p&x=" + b"y" * 20_000),
            frozenset({400}),
        ),
        Attack("a form of 100 fields", lambda t: web_form(t, b"a=1&" * 100), frozenset({400})),
        Attack(
            "a form that is not UTF-8", lambda t: web_form(t, b"pair=\xff\xfe"), frozenset({400})
        ),
        Attack("2,000 first visits", web_visits, frozenset({200})),
        Attack(
            "an item's history with a 10 KB UID",
            lambda t: [
                send(t, "GET", "/web/history?uid=" + "u" * 10_000, headers=web_credentials(t))
            ],
            frozenset({200, 400}),
        ),
    ),
)


# -- /api/ -------------------------------------------------------------------------------


def api_auth(t: Target) -> dict[str, str]:
    return {"Authorization": f"Bearer {t.token}"}


def api(method: str, path: str, body: bytes = b"") -> Callable[[Target], list[Answer]]:
    return lambda t: [
        send(
            t, method, path, headers={**api_auth(t), "Content-Type": "application/json"}, body=body
        )
    ]


def api_samples(t: Target) -> list[Sample]:
    """What the command line sends (``gateway/client.py``) and the other routes."""
    js = {"Content-Type": "application/json"}
    return [
        Sample("status", "GET", "/api/status", {}, b""),
        Sample("sync", "POST", "/api/sync", js, json.dumps({"pairs": ["p"]}).encode()),
        Sample(
            "sync-wait",
            "POST",
            "/api/sync",
            js,
            json.dumps({"pairs": ["p"], "wait": True, "dry_run": True}).encode(),
        ),
        Sample("conflicts", "GET", "/api/conflicts?limit=5", {}, b""),
        Sample("history", "GET", "/api/history?uid=e1&limit=5", {}, b""),
        Sample(
            "restore",
            "POST",
            "/api/restore",
            js,
            json.dumps({"uid": "no-such-uid", "to": "dir"}).encode(),
        ),
        Sample("identify", "GET", "/api/identify?nonce=" + "ab" * 16, {}, b""),
        Sample("openapi", "GET", "/api/openapi.json", {}, b""),
    ]


API = Endpoint(
    name="/api/",
    path="/api/restore",
    method="POST",
    content_type="application/json",
    credentials=api_auth,
    guess=lambda n: ({"Authorization": f"Bearer guess-{n}-{'0' * 40}"}, b""),
    refused=frozenset({401}),
    probe=Legit.status,
    samples=api_samples,
    throttled=False,  # wrong tokens are limited from other machines only
    trickle=(b'{"uid": "', b"a"),
    state_touch=lambda legit: legit.api_session(),
    attacks=(
        Attack(
            "JSON nested 60k deep",
            api("POST", "/api/restore", b"[" * 60_000 + b"]" * 60_000),
            frozenset({400}),
        ),
        Attack(
            "49 MB JSON body with the token",
            api("POST", "/api/restore", b" " * (49 * MB)),
            frozenset({400, 413, None}),
        ),
        Attack(
            "a 1 MB nonce",
            lambda t: [send(t, "GET", "/api/identify?nonce=" + "a" * 60_000)],
            frozenset({400}),
        ),
        Attack(
            "limit out of range",
            api("GET", "/api/history?limit=99999999999999999999"),
            frozenset({400}),
        ),
    ),
)


ENDPOINTS: tuple[Endpoint, ...] = (SYNCML, DAV, FEEDS, API, WEB)


def all_attacks() -> list[tuple[Endpoint, Attack]]:
    return [(ep, a) for ep in ENDPOINTS for a in (*ep.attacks, *common_attacks(ep))]
