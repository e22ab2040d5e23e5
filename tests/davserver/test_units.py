"""The endpoint's parts on their own: [caldav] validation, sync-token state, hrefs."""

from __future__ import annotations

from pathlib import Path

import pytest

from calsync.config import ConfigError, parse
from calsync.davserver import state as state_mod
from calsync.davserver.config import load
from calsync.davserver.service import default_href, derived_href, etag_of
from calsync.davserver.state import DavState, InvalidToken

BASE = """
[stores.hub]
type = "vdir"
path = "{tmp}/hub"
create = true
"""


def problems(tmp: Path, text: str) -> list[str]:
    _, errors = parse(BASE.format(tmp=tmp) + text, tmp / "config.toml")
    return [str(e) for e in errors]


def test_caldav_section_is_validated_with_file_line_and_key(tmp_path: Path) -> None:
    assert problems(tmp_path, '[caldav.users.alice]\npassword = "x"\ncalendars = ["hub"]\n') == []
    errs = problems(tmp_path, '[caldav.users.alice]\ncalendars = ["hub"]\n')
    assert len(errs) == 1 and "caldav.users.alice.password" in errs[0] and ":6:" in errs[0]
    errs = problems(tmp_path, '[caldav.users.alice]\npassword = "x"\n')
    assert "calendars" in errs[0]
    errs = problems(tmp_path, '[caldav.users."a/b"]\npassword = "x"\ncalendars = ["hub"]\n')
    assert "user name" in errs[0]
    errs = problems(tmp_path, '[caldav.users.alice]\npassword = "x"\ncalendars = ["a b"]\n')
    assert "usable in a URL" in errs[0]
    errs = problems(
        tmp_path, '[caldav.users.alice]\npassword = "x"\ncalendars = ["hub"]\nfoo = 1\n'
    )
    assert "foo" in errs[0]
    # a store that does not exist is named by `calsync check`, and when the endpoint loads
    cfg, errors = parse(
        BASE.format(tmp=tmp_path) + '[caldav.users.alice]\npassword = "x"\ncalendars = ["nope"]\n'
    )
    assert [e.key for e in errors] == ["caldav.users.alice.calendars"]
    assert "no store named 'nope'" in str(errors[0])
    with pytest.raises(ConfigError, match="no store named 'nope'"):
        load(cfg)
    cfg, _ = parse(
        BASE.format(tmp=tmp_path)
        + '[caldav.users.alice]\npassword_command = ["echo", "from-cmd"]\ncalendars = ["hub"]\n'
    )
    assert load(cfg).users["alice"].password == "from-cmd"
    assert "from-cmd" not in repr(load(cfg).users["alice"])


def test_sync_tokens_record_changes_and_refuse_what_they_cannot_answer(tmp_path: Path) -> None:
    st = DavState(tmp_path / "dav.sqlite")
    s1 = st.refresh("hub", "vdir:/a", {"a.ics": "1", "b.ics": "1"})
    assert st.changed_since("hub", s1.token) == []
    assert st.refresh("hub", "vdir:/a", {"a.ics": "1", "b.ics": "1"}).token == s1.token
    s2 = st.refresh("hub", "vdir:/a", {"a.ics": "2", "c.ics": "1"})
    assert s2.seq == s1.seq + 1
    assert st.changed_since("hub", s1.token) == ["a.ics", "b.ics", "c.ics"]
    assert st.changed_since("hub", s2.token) == []
    # an href that cannot be listed right now is not taken for gone
    s3 = st.refresh("hub", "vdir:/a", {"a.ics": "2"}, keep={"c.ics"})
    assert s3.token == s2.token
    # tokens survive a restart (the state is on disk)
    st.close()
    st = DavState(tmp_path / "dav.sqlite")
    assert st.changed_since("hub", s1.token) == ["a.ics", "b.ics", "c.ics"]
    for bad in ("", "http://radicale.org/ns/sync/abc", s2.token + "x", s2.token[:-1] + "99"):
        with pytest.raises(InvalidToken):
            st.changed_since("hub", bad)
    # the store now points elsewhere: every token of before is refused
    s4 = st.refresh("hub", "vdir:/b", {"z.ics": "1"})
    assert s4.epoch != s1.epoch
    with pytest.raises(InvalidToken):
        st.changed_since("hub", s2.token)
    st.close()


def test_forgotten_tombstones_invalidate_old_tokens_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_mod, "MAX_TOMBSTONES", 4)
    st = DavState(tmp_path / "dav.sqlite")
    items = {f"{n}.ics": "1" for n in range(10)}
    old = st.refresh("hub", "id", dict(items)).token
    tokens = []
    for n in range(10):  # one deletion per step
        items.pop(f"{n}.ics")
        tokens.append(st.refresh("hub", "id", dict(items)).token)
    with pytest.raises(InvalidToken, match="too old"):
        st.changed_since("hub", old)
    assert st.changed_since("hub", tokens[-2]) == ["9.ics"]
    assert st.changed_since("hub", tokens[-1]) == []
    st.close()


def test_clients_are_told_apart_by_the_app_password_they_used(tmp_path: Path) -> None:
    """Two phones of one user with the same program are two clients when each logs in
    with its own app password; a file from before the column keeps its clients."""
    import sqlite3

    path = tmp_path / "dav.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE clients (user TEXT NOT NULL, agent TEXT NOT NULL,"
        " address TEXT NOT NULL, last REAL NOT NULL, PRIMARY KEY (user, agent));"
        "INSERT INTO clients VALUES ('alice', 'Thunderbird', '127.0.0.1', 100.0);"
    )
    old.close()
    st = DavState(path)
    assert st.clients() == [("alice", "Thunderbird", "127.0.0.1", 100.0, "")]
    assert st.client_due("alice", "iOS/17", 200.0, "phone")
    st.client_seen("alice", "iOS/17", "10.0.0.2", 200.0, "phone")
    assert not st.client_due("alice", "iOS/17", 230.0, "phone")  # written a minute ago
    assert st.client_due("alice", "iOS/17", 230.0, "phone-2")  # another phone
    st.client_seen("alice", "iOS/17", "10.0.0.3", 230.0, "phone-2")
    st.close()
    st = DavState(path)  # opened again: nothing to rebuild, nothing lost
    assert st.clients() == [
        ("alice", "iOS/17", "10.0.0.3", 230.0, "phone-2"),
        ("alice", "iOS/17", "10.0.0.2", 200.0, "phone"),
        ("alice", "Thunderbird", "127.0.0.1", 100.0, ""),
    ]
    st.close()


def test_hrefs_are_plain_names_and_stable() -> None:
    assert default_href("abc@x.ics") == "abc@x.ics"
    assert default_href("/cal/user/ev\x01.ics").startswith("calsync-")  # not a plain name
    assert default_href("/cal/user/ev1.ics") == "ev1.ics"  # a URL path's last segment
    assert default_href("a/b\tc") == derived_href("a/b\tc") == derived_href("a/b\tc")
    assert default_href(".hidden") != ".hidden"
    assert etag_of("hub", "a", "1") != etag_of("hub", "a", "2") != etag_of("laptop", "a", "2")
    assert etag_of("hub", "a", "1").startswith('"') and etag_of("hub", "a", "1").endswith('"')


def test_names_in_any_script_are_hrefs_as_they_are() -> None:
    """A store id in any script is its own href, unnormalised (NFC and NFD are two
    names); what Radicale would refuse (control and format characters) or a
    file system hides (a leading dot) gets a derived name."""
    from tests.davserver.test_hrefs import NAMES

    for name in NAMES:
        assert default_href(name) == name
        assert default_href(f"/cal/user/{name}") == name  # a CalDAV store's id (decoded)
    assert default_href("ävent.ics") != default_href("a\u0308vent.ics")
    assert default_href("会議\u3000資料.ics") == "会議\u3000資料.ics"  # an ideographic space
    for odd in ("a\x85b.ics", "a\u200db.ics", "a\u202eb.ics", "a\u2028b", ".ävent", "ä "):
        assert default_href(odd) == derived_href(odd), repr(odd)
    assert default_href("ä" * 201) == "ä" * 201 and default_href("ä" * 202).startswith("calsync-")


def test_a_vdir_takes_a_clients_name_as_file_name_only_when_it_is_one(tmp_path: Path) -> None:
    from calsync.items import Item
    from calsync.stores import StoreContext
    from calsync.stores.vdir import VdirStore, client_file_name
    from tests.conftest import event
    from tests.davserver.test_hrefs import NAMES

    for name in NAMES:
        assert client_file_name(name, ".ics")
    for odd in (
        "x.ICS",  # not listed back: another extension
        ".ics",
        ".hidden.ics",
        "a:b.ics",
        "a?.ics",
        "a*.ics",
        'a"b.ics',
        "a<b>.ics",
        "a|b.ics",
        "a\\b.ics",
        "a/b.ics",
        "CON.ics",
        "a\x85.ics",
        "a\u200d.ics",
        "ä" * 99 + ".ics",  # 202 bytes
    ):
        assert not client_file_name(odd, ".ics"), repr(odd)
    assert client_file_name("ä" * 98 + ".ics", ".ics")
    assert client_file_name("会議\u3000資料.ics", ".ics")
    assert client_file_name("a", "") and not client_file_name("a.", "")

    vdir = VdirStore("hub", StoreContext(tmp_path / "cache"), path=tmp_path / "hub")
    first = Item.from_bytes(event("one@x"))
    assert vdir.add_named(first, "ä b.ics")[0] == "ä b.ics"
    assert (tmp_path / "hub" / "ä b.ics").read_bytes() == first.raw
    # the same item again under that name: adopted, not duplicated
    assert vdir.add_named(first, "ä b.ics")[0] == "ä b.ics"
    # a different item under a taken name, or a name that is not a file name: the UID's
    other = Item.from_bytes(event("two@x"))
    assert vdir.add_named(other, "ä b.ics")[0] == "two@x.ics"
    assert vdir.add_named(Item.from_bytes(event("three@x")), "a:b.ics")[0] == "three@x.ics"
    assert sorted(vdir.list().versions) == sorted(["ä b.ics", "two@x.ics", "three@x.ics"])


def test_the_wsgi_path_is_decoded_once_and_strictly() -> None:
    """PEP 3333 carries the URL's bytes as latin-1 characters; Radicale wants the text."""
    from calsync.davserver.app import as_text

    for name in ("/alice/hub/ävent.ics", "/alice/hub/град.ics", "/alice/hub/日本 🎉.ics"):
        assert as_text({"PATH_INFO": name.encode().decode("latin-1")}, "PATH_INFO") == name
    assert as_text({}, "SCRIPT_NAME") == ""
    with pytest.raises(UnicodeDecodeError):
        as_text({"PATH_INFO": "/alice/hub/\xff.ics"}, "PATH_INFO")


def test_the_xml_gate_refuses_while_the_body_arrives() -> None:
    """The first 64 kB of a 150k-deep body are enough to refuse it: no tree, no waiting."""
    from calsync.davserver.bodies import BodyRefused, XmlGate
    from tests.adversarial.bombs import deep_propfind

    body = deep_propfind(150_000)
    gate = XmlGate()
    with pytest.raises(BodyRefused, match="deeper than 64") as e:
        gate.feed(body[:65536])
    assert e.value.status == 400


def test_the_xml_gate_counts_elements_and_passes_real_bodies() -> None:
    from calsync.davserver.bodies import MAX_ELEMENTS, BodyRefused, XmlGate, gate_for
    from tests.davserver.test_endpoint import PROPFIND_DISCOVERY

    gate = XmlGate()
    gate.feed(PROPFIND_DISCOVERY.encode())
    gate.close()
    many = b"<d:propfind xmlns:d='DAV:'><d:prop>" + b"<d:x/>" * MAX_ELEMENTS + b"</d:prop>"
    with pytest.raises(BodyRefused, match="more than"):
        XmlGate().feed(many)
    # an empty body is no XML (PROPFIND allprop); a PUT's body is not XML at all
    XmlGate().close()
    assert gate_for("PUT") is None and gate_for("PROPFIND") is not None
