"""Thunderbird's Exchange ActiveSync provider, driven headless: a real EAS client for tests.

What runs: a real headless Thunderbird 153 (``../shared/peers/thunderbird/tbpeer.py``, driven
through Marionette) with the real EAS-4-TbSync 5.3.4 add-on built from the snapshot in
``../shared/peers/eas/``. The provider does all the ActiveSync work itself: OPTIONS, Provision,
FolderSync, Sync, the calendars it creates in Thunderbird, its codecs and its queue of the
user's edits.

Why not TbSync 5.0.10 beside it: the provider needs a TbSync host to register with, and the
only TbSync snapshot there is speaks protocol "1.0" while the provider speaks 3. TbSync 5.0.10
refuses the provider's announce (``protocol-version-mismatch``; ``announce_to_tbsync_5_0_10``
shows it, and a test keeps asserting it, so a compatible snapshot is noticed). So the tests
install ``tests/eas/tbsync_host/``, a small test-only host for protocol 3 built around the
provider's own vendored ``protocol.mjs`` (see its header and ``TBSYNC_BEHAVIOURS.md``).

How the tests reach into Thunderbird: Marionette runs privileged JS in the parent process;
extensions run in a separate ``extension`` process, so a process script (loaded once per
Thunderbird session) answers ``calsync-tbs:run`` messages there: it calls the host's
``window.calsyncHost.call`` in the host's background page, or runs a snippet inside one of the
provider's own pages (its setup page). Everything crosses as JSON strings.

Creating an account uses the provider's own path with no person in it: the host sends
``OPEN_SETUP_POPUP``; the provider opens its setup page; inside that page the harness sends
what the page's "Create account" button sends (``eas.createAccount`` with servertype
``custom``, then ``tbsync-setup-completed``); the provider registers the account
(``REGISTER_ACCOUNT``) and runs its OPTIONS probe; the host then connects it
(``ACCOUNT_ENABLED``: Provision, FolderSync) and selects its calendar and task folders.

Rules:
- A missing Thunderbird, a provider that does not announce, or a host call that fails raises
  ``TbSyncError`` naming the step: nothing here skips.
- The password goes into the provider's account row and nowhere else: the host masks it in
  every row and log line it hands back, and ``TbSyncError`` messages never contain it.
- Items are exchanged as iCalendar text through Thunderbird's own ICS parser and serializer,
  and written through the provider's calendar (``addItem``/``modifyItem``/``deleteItem``), the
  path a user's edit takes, so the provider queues and pushes them.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import shutil
import tarfile
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.conftest import SHARED
from tests.gateway.helpers import wait_for

EAS_DIR = SHARED / "peers" / "eas"
HOST_DIR = Path(__file__).resolve().parent / "tbsync_host"
PROVIDER_ID = "eas4tbsync@jobisoft.de"
HOST_ID = "tbsync@jobisoft.de"
PROVIDER_NAME = "eas"  # the provider's shortName: the host's providerId
PROVIDER_SRC = "EAS-4-TbSync-5.3.4/src"
VENDORED = ("protocol.mjs", "status.mjs")  # the host imports these from the provider
CALL_TIMEOUT = 900  # seconds one host call (a whole sync) may take


class TbSyncError(RuntimeError):
    """A step of driving Thunderbird or the provider failed."""


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TbSyncError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def install_addons_module() -> ModuleType:
    """``../shared/peers/eas/install_addons.py``: builds the add-ons from the snapshots."""
    from tests.stores.thunderbird.test_real_thunderbird import tbpeer

    tbpeer()  # installs Thunderbird if needed, fails loudly if it cannot
    return _load("install_addons", EAS_DIR / "install_addons.py")


def build_addons(work: Path) -> dict[str, Path]:
    """The real TbSync 5.0.10 and EAS-4-TbSync 5.3.4 xpis (as the shared installer builds
    them), and the test host xpi with the provider's vendored protocol files."""
    tbsync_xpi, provider_xpi = install_addons_module().build(work)
    host_src = work / "tbsync_host"
    shutil.copytree(HOST_DIR, host_src)
    for name in VENDORED:
        shutil.copyfile(work / PROVIDER_SRC / "vendor" / "tbsync" / name, host_src / name)
    host_xpi = work / "calsync-tbsync-host.xpi"
    with zipfile.ZipFile(host_xpi, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(host_src.rglob("*")):
            if f.is_file():
                z.write(f, f.relative_to(host_src).as_posix())
    return {"tbsync": tbsync_xpi, "provider": provider_xpi, "host": host_xpi}


# -- privileged JS --------------------------------------------------------------------------

# Runs in every content process; answers only where the browsing context lives.
PROCESS_SCRIPT = r"""
addMessageListener("calsync-tbs:run", async (m) => {
  const { id, kind, bc, payload } = m.data;
  const win = BrowsingContext.get(bc)?.window;
  if (!win) return;
  let reply;
  try {
    if (kind === "host") {
      const host = win.wrappedJSObject.calsyncHost;
      if (!host || !host.ready) throw new Error("the test host is not ready");
      reply = { ok: true, value: await host.call(payload) };
    } else {
      const sb = Cu.Sandbox(win, { sandboxPrototype: win, wantXrays: false, sameZoneAs: win });
      sb.__args = Cu.cloneInto(JSON.parse(payload.args), sb);
      const r = await Cu.evalInSandbox("(async () => {" + payload.code + "})()", sb);
      reply = { ok: true, value: JSON.stringify(r ?? null) };
    }
  } catch (e) {
    reply = { ok: false, value: String(e) };
  }
  sendAsyncMessage("calsync-tbs:reply", { id, ...reply });
});
"""

PRELUDE = r"""
const { ExtensionParent } = ChromeUtils.importESModule(
  "resource://gre/modules/ExtensionParent.sys.mjs");
const G = Cu.getGlobalForObject(Services);
const tbs = {
  channel() {
    if (!G.__calsyncTbs) {
      const waiting = new Map();
      Services.ppmm.addMessageListener("calsync-tbs:reply", { receiveMessage(m) {
        const w = waiting.get(m.data.id);
        if (w) { waiting.delete(m.data.id); w(m.data); }
      } });
      const url = "data:application/javascript;charset=utf-8,";
      Services.ppmm.loadProcessScript(url + encodeURIComponent(__PROCESS_SCRIPT__), true);
      G.__calsyncTbs = { waiting, n: 0 };
    }
    return G.__calsyncTbs;
  },
  background(id) {
    const ext = ExtensionParent.GlobalManager.getExtension(id);
    if (!ext) throw new Error("add-on " + id + " is not running");
    const view = [...ext.views].find(v => v.viewType == "background");
    if (!view) throw new Error("add-on " + id + " has no background page");
    return view.xulBrowser.browsingContext.id;
  },
  send(kind, bc, payload, timeoutMs) {
    const ch = tbs.channel();
    const id = "r" + (++ch.n);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        ch.waiting.delete(id);
        reject(new Error(kind + " call timed out after " + timeoutMs + " ms"));
      }, timeoutMs);
      ch.waiting.set(id, r => { clearTimeout(timer); resolve(r); });
      Services.ppmm.broadcastAsyncMessage("calsync-tbs:run", { id, kind, bc, payload });
    });
  },
  async host(method, args, timeoutMs) {
    const r = await tbs.send("host", tbs.background(__HOST_ID__),
                             JSON.stringify({ method, args }), timeoutMs);
    if (!r.ok) throw new Error("host." + method + ": " + r.value);
    const reply = JSON.parse(r.value);
    if (!reply.ok) throw new Error("host." + method + ": " + reply.error);
    return reply.value;
  },
  async page(bc, code, args, timeoutMs) {
    const r = await tbs.send("page", bc, { code, args: JSON.stringify(args) }, timeoutMs);
    if (!r.ok) throw new Error(r.value);
    return JSON.parse(r.value);
  },
  /** The browsing context of an extension page whose URL contains `needle`. */
  findPage(needle) {
    for (const win of Services.wm.getEnumerator(null)) {
      for (const b of win.document.querySelectorAll("browser")) {
        if ((b.currentURI?.spec ?? "").includes(needle)) return b.browsingContext.id;
      }
    }
    return null;
  },
  calendar(id) {
    const c = cal.manager.getCalendarById(id);
    if (!c) throw new Error("no calendar " + id);
    return c;
  },
};
""".replace("__PROCESS_SCRIPT__", json.dumps(PROCESS_SCRIPT)).replace(
    "__HOST_ID__", json.dumps(HOST_ID)
)

CALL_HOST = "return await tbs.host(arguments[0], arguments[1], arguments[2]);"

INSTALLED = """
const { AddonManager } = ChromeUtils.importESModule("resource://gre/modules/AddonManager.sys.mjs");
return (await AddonManager.getAllAddons()).filter(a => a.type == "extension")
  .map(a => ({ id: a.id, version: a.version, active: a.isActive,
               temporary: !!a.temporarilyInstalled }));
"""

TRUST_CA = """
const db = Cc["@mozilla.org/security/x509certdb;1"].getService(Ci.nsIX509CertDB);
const cert = db.addCertFromBase64(arguments[0], "C,,");
return { subject: cert.subjectName, trusted: db.isCertTrusted(cert, Ci.nsIX509Cert.CA_CERT,
                                                              Ci.nsIX509CertDB.TRUSTED_SSL) };
"""

# What the setup page's "Create account" button sends for a custom server (setup.mjs).
SETUP_PAGE = """
const a = __args;
const reply = await browser.runtime.sendMessage({
  type: "eas.createAccount", servertype: "custom",
  label: a.label, server: a.server, user: a.user, password: a.password });
if (!reply?.ok) return { ok: false, error: reply?.error ?? "no reply", code: reply?.code ?? null };
await browser.runtime.sendMessage({
  type: "tbsync-setup-completed", setupToken: a.setupToken,
  accountName: reply.result.accountName, icon: reply.result.icon ?? null,
  initialFolders: reply.result.initialFolders, custom: reply.result.custom });
setTimeout(() => window.close(), 0);
return { ok: true, accountName: reply.result.accountName };
"""

FIND_PAGE = "return tbs.findPage(arguments[0]);"

HAS_BACKGROUND = """
try { tbs.background(arguments[0]); return true; } catch (e) { return false; }
"""

# TbSync 5.0.10 keeps the providers it accepted in its session storage (modules/providers.mjs).
TBSYNC_PROVIDERS = """
const key = "tbsync.providers";
const code = `return (await browser.storage.session.get("${key}"))["${key}"] ?? {};`;
return await tbs.page(tbs.background(arguments[0]), code, {}, 30000);
"""

ITEMS = """
const c = tbs.calendar(arguments[0]);
const items = await c.getItemsAsArray(Ci.calICalendar.ITEM_FILTER_ALL_ITEMS, 0, null, null);
const out = {};
for (const item of items) out[item.id] = tb.serialize([item]);
return out;
"""

ADD = """
const c = tbs.calendar(arguments[0]);
const items = tb.parseIcs(arguments[1]);
if (items.length != 1) throw new Error("expected one item (and its overrides): " + items.length);
const added = await c.addItem(items[0]);
return added.id;
"""

MODIFY = """
const c = tbs.calendar(arguments[0]);
const items = tb.parseIcs(arguments[1]);
if (items.length != 1) throw new Error("expected one item (and its overrides): " + items.length);
const old = await c.getItem(items[0].id);
if (!old) throw new Error("no item " + items[0].id + " in " + c.name);
const fresh = items[0].clone();
fresh.calendar = c;
await c.modifyItem(fresh, old);
return fresh.id;
"""

DELETE = """
const c = tbs.calendar(arguments[0]);
const old = await c.getItem(arguments[1]);
if (!old) throw new Error("no item " + arguments[1] + " in " + c.name);
await c.deleteItem(old);
return arguments[1];
"""

CALENDAR_INFO = """
const c = tbs.calendar(arguments[0]);
return { id: c.id, name: c.name, type: c.type, readOnly: !!c.readOnly,
         disabled: !!c.getProperty("disabled"),
         events: !!c.getProperty("capabilities.events.supported"),
         tasks: !!c.getProperty("capabilities.tasks.supported") };
"""


class TbSyncPeer:
    """A headless Thunderbird with the EAS provider and the test host, as one EAS client.

    >>> peer = TbSyncPeer(tmp_path / "tb")
    >>> peer.start()
    >>> account = peer.add_account("https://127.0.0.1:8443", "alice", "secret", ca=ca_pem)
    >>> peer.sync(account)
    >>> peer.events(peer.calendars(account)["calendars"][0])
    """

    def __init__(self, root: Path, tz: str = "UTC") -> None:
        self.root = Path(root).resolve()
        self.tz = tz
        self._tbpeer: ModuleType | None = None
        self.peer: Any = None
        self.xpis: dict[str, Path] = {}
        self._secrets: list[str] = []

    # -- life cycle ---------------------------------------------------------------------------

    def start(self, host: str = "test", timeout: float = 120) -> Path:
        """Start Thunderbird and install the add-ons as temporary add-ons; returns the profile.

        ``host="test"``: the test host, then the provider, and wait until the provider has
        announced itself and holds the host's port. ``host="tbsync-5.0.10"``: the real TbSync
        snapshot instead (which refuses the provider, see ``announce_to``)."""
        from tests.stores.thunderbird.test_real_thunderbird import tbpeer

        if host not in ("test", "tbsync-5.0.10"):
            raise ValueError(f"unknown host {host!r}")
        self._tbpeer = tbpeer()
        self.root.mkdir(parents=True, exist_ok=True)
        self.xpis = build_addons(self.root / "build")
        self.peer = self._tbpeer.Peer(self.root, tz=self.tz, log=lambda *a: None)
        profile = Path(self.peer.init())
        self.peer.start(timeout=timeout)
        # tbpeer's socket gives up after 120 s; a long sync is a long Marionette call
        self.peer.connect().sock.settimeout(CALL_TIMEOUT + 60)
        try:
            if host == "test":
                self._install(self.xpis["host"])
                self._wait(self._host_ready, timeout, "the test host's background page")
                self._install(self.xpis["provider"])
                self._wait(
                    lambda: PROVIDER_NAME in self.host("status")["connected"],
                    timeout,
                    "EAS-4-TbSync to announce itself and take the host's port",
                )
            else:
                self._install(self.xpis["tbsync"])
                self._wait(lambda: self._has_background(HOST_ID), timeout, "TbSync to start")
                self._install(self.xpis["provider"])
                self._wait(
                    lambda: self._has_background(PROVIDER_ID), timeout, "EAS-4-TbSync to start"
                )
        except BaseException:
            self.stop()
            raise
        return profile

    def stop(self) -> None:
        if self.peer is not None:
            self.peer.stop()

    def __enter__(self) -> TbSyncPeer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def installed(self) -> list[dict[str, Any]]:
        """The extensions Thunderbird reports: id, version, active, temporary."""
        return list(self.js(INSTALLED, []))

    def _install(self, xpi: Path) -> None:
        try:
            self.peer.connect().command("Addon:Install", {"path": str(xpi), "temporary": True})
        except (self._tbpeer.MarionetteError, OSError) as e:  # type: ignore[union-attr]
            raise TbSyncError(f"Thunderbird refused to install {xpi.name}: {e}") from e

    def _has_background(self, extension_id: str) -> bool:
        return bool(self.js(HAS_BACKGROUND, [extension_id]))

    def _host_ready(self) -> bool:
        try:
            self.host("status", timeout=10)
        except TbSyncError:
            return False
        return True

    @staticmethod
    def _wait(check: Any, timeout: float, what: str) -> Any:
        try:
            return wait_for(check, timeout, what, step=0.5)
        except AssertionError as e:
            raise TbSyncError(str(e)) from None

    # -- plumbing -----------------------------------------------------------------------------

    def _clean(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def js(self, body: str, args: list[Any], timeout: float = 120) -> Any:
        """Run privileged JS (tbpeer's prelude, then ``tbs``) in Thunderbird."""
        if self.peer is None:
            raise TbSyncError("Thunderbird is not started")
        try:
            return self.peer.js(PRELUDE + body, args, timeout=timeout)
        except self._tbpeer.MarionetteError as e:  # type: ignore[union-attr]
            raise TbSyncError(self._clean(str(e)).split("\n")[0]) from None

    def host(self, method: str, *args: Any, timeout: float = CALL_TIMEOUT) -> Any:
        """Call the test host (``api`` in tbsync_host/host.mjs)."""
        return self.js(CALL_HOST, [method, list(args), int(timeout * 1000)], timeout=timeout + 30)

    def event_log(self, since: int = 0) -> list[dict[str, Any]]:
        """What the host recorded: announces, commands both ways, the provider's event log
        (``kind == "event"``; its ``[eas:net]`` debug lines carry every decoded message)."""
        return list(self.host("log", since))

    def last_seq(self) -> int:
        entries = self.event_log()
        return int(entries[-1]["seq"]) if entries else 0

    # -- certificates -------------------------------------------------------------------------

    def trust_ca(self, ca_pem: Path) -> dict[str, Any]:
        """Trust a test CA for TLS servers, in the profile's certificate database (cert9.db)."""
        pem = Path(ca_pem).read_text(encoding="ascii")
        body = "".join(line for line in pem.splitlines() if line and not line.startswith("-----"))
        base64.b64decode(body, validate=True)  # a clear error here, not in NSS
        info: dict[str, Any] = self.js(TRUST_CA, [body])
        if not info.get("trusted"):
            raise TbSyncError(f"Thunderbird does not trust {ca_pem} after adding it: {info}")
        return info

    # -- accounts -----------------------------------------------------------------------------

    def add_account(
        self,
        url: str,
        user: str,
        password: str,
        ca: Path | None = None,
        name: str = "calsync",
        timeout: float = 180,
    ) -> str:
        """Create an EAS account through the provider's own setup path, connect it and select
        its calendar and task folders. Returns the host's account id."""
        self._secrets.append(password)
        if ca is not None:
            self.trust_ca(ca)
        token = self.host("beginSetup", PROVIDER_NAME)
        bc = self._wait(
            lambda: self.js(FIND_PAGE, [token]), 60, "the provider's setup page to open"
        )
        args = {"label": name, "server": url, "user": user, "password": password}
        made = self.js(
            "return await tbs.page(arguments[0], arguments[1], arguments[2], 60000);",
            [bc, SETUP_PAGE, {**args, "setupToken": token}],
        )
        if not made.get("ok"):
            raise TbSyncError(f"the provider refused the account: {self._clean(str(made))}")
        outcome = self._wait(
            lambda: (o := self.host("setupOutcome", token))["done"] and o,
            timeout,
            "the provider to register the account",
        )
        if outcome["error"] or not outcome["result"]:
            raise TbSyncError(f"registering the account failed: {outcome['error']}")
        account = str(outcome["result"]["accountId"])
        enabled = self.host("enableAccount", account)
        if not enabled.get("ok"):
            raise TbSyncError(f"connecting the account failed: {enabled}")
        for folder in self.folders(account):
            if folder["targetType"] in ("calendars", "tasks") and not folder["hidden"]:
                selected = self.host("selectFolder", account, folder["folderId"])
                if not selected.get("ok"):
                    raise TbSyncError(f"selecting {folder['displayName']} failed: {selected}")
        return account

    def account(self, account: str) -> dict[str, Any]:
        """The host's row of the account (password masked)."""
        row = self.host("status")["accounts"].get(account)
        if row is None:
            raise TbSyncError(f"no account {account}")
        return dict(row)

    def folders(self, account: str) -> list[dict[str, Any]]:
        """The account's folder rows, as the provider pushed them (+ the host's fields)."""
        return list(self.host("status")["folders"].get(account, []))

    def sync(self, account: str, folder: str | None = None) -> dict[str, Any]:
        """Sync the account (or one folder) as TbSync does; the outcome of every folder.
        Raises when the account or any folder did not sync."""
        if folder is None:
            outcome = self.host("syncAccount", account)
        else:
            outcome = self.host("syncFolder", account, folder)
        failed = [
            f"{fid}: {r.get('message') or r.get('error')}"
            for fid, r in (outcome.get("folders") or {}).items()
            if r.get("type") not in ("success", "warning")
        ]
        top = outcome.get("account") or {}
        if outcome.get("ok") is False or top.get("type") not in ("success", None) or failed:
            raise TbSyncError(f"sync of account {account} failed: {top} {failed}")
        return dict(outcome)

    def changelog(self, account: str, folder: str) -> list[dict[str, Any]]:
        """The provider's queue of edits made in Thunderbird and not yet on the server."""
        got = self.host("changelog", account, folder)
        if not got.get("ok"):
            raise TbSyncError(f"reading the change queue failed: {got}")
        return list(got["entries"] or [])

    def calendars(self, account: str) -> dict[str, list[str]]:
        """Thunderbird calendar ids the provider bound to the account's folders, by kind
        ("calendars", "tasks"); a folder is bound at its first sync."""
        out: dict[str, list[str]] = {"calendars": [], "tasks": []}
        for f in self.folders(account):
            if f["selected"] and f["targetID"] and f["targetType"] in out:
                out[f["targetType"]].append(f["targetID"])
        return out

    def calendar_info(self, calendar: str) -> dict[str, Any]:
        return dict(self.js(CALENDAR_INFO, [calendar]))

    # -- items --------------------------------------------------------------------------------

    def events(self, calendar: str) -> dict[str, str]:
        """Every item of a provider calendar: UID -> iCalendar text (Thunderbird's own
        serializer; a series with its overrides)."""
        return dict(self.js(ITEMS, [calendar]))

    def add_event(self, calendar: str, ics: str) -> str:
        """Add one event (a VCALENDAR holding one UID, overrides allowed) as a user would."""
        return str(self.js(ADD, [calendar, ics]))

    def add_task(self, calendar: str, ics: str) -> str:
        """Add one task (a VCALENDAR with one VTODO) as a user would."""
        if "BEGIN:VTODO" not in ics:
            raise TbSyncError("add_task needs a VTODO")
        return str(self.js(ADD, [calendar, ics]))

    def edit_event(self, calendar: str, ics: str) -> str:
        """Replace an item (found by the UID in ``ics``) with ``ics``, as a user's edit."""
        return str(self.js(MODIFY, [calendar, ics]))

    def delete_event(self, calendar: str, uid: str) -> str:
        """Delete an item (event or task) as a user would."""
        return str(self.js(DELETE, [calendar, uid]))

    # -- TbSync 5.0.10 ------------------------------------------------------------------------

    def announce_to(self, extension_id: str, protocol_version: Any) -> Any:
        """Send the provider's announce (its shape, from the provider's background page) to
        ``extension_id`` and return the answer."""
        code = """
const a = __args;
return await browser.runtime.sendMessage(a.to, {
  type: "tbsync-provider-announce", protocolVersion: a.version,
  providerId: browser.runtime.id, providerName: "Exchange ActiveSync",
  providerVersion: browser.runtime.getManifest().version, shortName: "eas",
  icons: {}, capabilities: {} });
"""
        return self.js(
            "return await tbs.page(tbs.background(arguments[0]), arguments[1], arguments[2], 3e4);",
            [PROVIDER_ID, code, {"to": extension_id, "version": protocol_version}],
        )

    def tbsync_providers(self) -> dict[str, Any]:
        """The providers the real TbSync (``start(host="tbsync-5.0.10")``) has accepted."""
        return dict(self.js(TBSYNC_PROVIDERS, [HOST_ID]))


def provider_protocol_version() -> Any:
    """PROTOCOL_VERSION as the provider snapshot's vendored protocol.mjs declares it."""
    return _snapshot_protocol_version("EAS-4-TbSync-5.3.4-b89fbf8.tar.gz", f"{PROVIDER_SRC}/vendor")


def tbsync_protocol_version() -> Any:
    """PROTOCOL_VERSION as the TbSync 5.0.10 snapshot declares it."""
    return _snapshot_protocol_version("TbSync-5.0.10-affac09.tar.gz", "TbSync-5.0.10")


def _snapshot_protocol_version(tarball: str, folder: str) -> Any:
    with tarfile.open(EAS_DIR / tarball) as t:
        member = t.extractfile(f"{folder}/tbsync/protocol.mjs")
        if member is None:
            raise TbSyncError(f"no protocol.mjs in {tarball}")
        text = member.read().decode("utf-8")
    m = re.search(r"export const PROTOCOL_VERSION = (.+?);", text)
    if m is None:
        raise TbSyncError(f"no PROTOCOL_VERSION in {tarball}")
    return json.loads(m.group(1))
