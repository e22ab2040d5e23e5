"""Saving a password *by Thunderbird itself*: a short headless run driven through Marionette.

Why: Thunderbird keeps passwords in ``logins.json``, encrypted with a key in
``key4.db`` (NSS), possibly behind the user's primary password.  Writing
that ourselves would mean re-implementing NSS's formats.  Instead calsync
starts the user's own Thunderbird on the profile, headless, with Marionette
(its remote-control protocol, loopback only, on a random port), and asks it
to store the login through its own login manager
(``Services.logins.addLoginAsync``): the same call its password prompt makes,
so Thunderbird encrypts it as it always does.  Then it quits cleanly.

Only done while Thunderbird is not running on the profile.  The password is
passed as a script argument on the loopback socket, never on a command line
or in a file.  A profile protected by a primary password cannot be unlocked
headless: the call then fails and says so.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

START_TIMEOUT = 90.0
PORT_PREF = "marionette.port"


class MarionetteError(RuntimeError):
    """Thunderbird could not be started or driven, or its script failed."""


class _Client:
    """Marionette protocol 3: ``<len>:<json>`` packets over TCP."""

    def __init__(self, port: int, timeout: float = 60.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.next_id = 0
        self._read()  # the server's hello

    def _read(self) -> Any:
        while b":" not in self.buf:
            self._fill()
        length, _, rest = self.buf.partition(b":")
        size = int(length)
        self.buf = rest
        while len(self.buf) < size:
            self._fill()
        packet, self.buf = self.buf[:size], self.buf[size:]
        return json.loads(packet)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise MarionetteError("Thunderbird closed the Marionette connection")
        self.buf += chunk

    def command(self, name: str, params: dict[str, Any] | None = None) -> Any:
        self.next_id += 1
        data = json.dumps([0, self.next_id, name, params or {}]).encode()
        self.sock.sendall(str(len(data)).encode() + b":" + data)
        while True:
            reply = self._read()
            if isinstance(reply, list) and len(reply) == 4 and reply[1] == self.next_id:
                break
        _, _, error, result = reply
        if error:
            message = error.get("message", error) if isinstance(error, dict) else error
            raise MarionetteError(f"{name}: {message}")
        return result

    def close(self) -> None:
        self.sock.close()


def thunderbird_binary() -> str:
    found = os.environ.get("CALSYNC_THUNDERBIRD") or shutil.which("thunderbird")
    if not found:
        raise MarionetteError(
            "Thunderbird's program was not found (set CALSYNC_THUNDERBIRD to its path)"
        )
    return found


def run_script(profile: Path, script: str, args: list[Any], *, timeout: float = 120.0) -> Any:
    """Start Thunderbird headless on ``profile``, run chrome ``script`` (an async function
    body; ``arguments`` holds ``args``), quit; returns the script's value."""
    from calsync.davserver.thunderbird import drop_pref, has_pref

    port_file = profile / "MarionetteActivePort"
    port_file.unlink(missing_ok=True)
    had_port = has_pref(profile, PORT_PREF)
    env = {
        **os.environ,
        "MOZ_HEADLESS": "1",
        "MOZ_CRASHREPORTER_DISABLE": "1",
        "MOZ_MARIONETTE_PREF_STATE_ACROSS_RESTARTS": json.dumps({"marionette.port": 0}),
    }
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            [
                thunderbird_binary(),
                "--headless",
                "--marionette",
                "-remote-allow-system-access",
                "--no-remote",
                "--profile",
                str(profile),
            ],
            env=env,
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            client = _connect(proc, port_file, out)
            try:
                client.command("WebDriver:NewSession", {"capabilities": {}})
                client.command("Marionette:SetContext", {"value": "chrome"})
                wrapped = (
                    "return (async () => {" + script + "})()"
                    ".then(v => ({ok: v}), e => ({error: String(e)}));"
                )
                result = client.command(
                    "WebDriver:ExecuteScript",
                    {"script": wrapped, "args": args, "scriptTimeout": int(timeout * 1000)},
                )
                value = result.get("value") if isinstance(result, dict) else result
                try:
                    client.command("Marionette:Quit", {"flags": ["eAttemptQuit"]})
                except (MarionetteError, OSError):
                    pass
            finally:
                client.close()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                _stop(proc)
        finally:
            if proc.poll() is None:
                _stop(proc)
            port_file.unlink(missing_ok=True)
    if not had_port:  # Thunderbird saved our random port into prefs.js: not the user's
        drop_pref(profile, PORT_PREF)
    if isinstance(value, dict) and "error" in value:
        raise MarionetteError(f"Thunderbird refused: {value['error']}")
    return value.get("ok") if isinstance(value, dict) else value


def _connect(proc: subprocess.Popen[bytes], port_file: Path, out: Any) -> _Client:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out.seek(0)
            tail = out.read()[-2000:].decode("utf-8", "replace")
            raise MarionetteError(f"Thunderbird exited ({proc.returncode}) at start:\n{tail}")
        text = port_file.read_text().strip() if port_file.exists() else ""
        if text.isdigit():
            try:
                return _Client(int(text))
            except OSError:
                pass
        time.sleep(0.1)
    raise MarionetteError("Thunderbird did not open Marionette in time")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Only the process we started (its own session), TERM then KILL."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


SAVE_LOGIN = """
const [origin, realm, user, password] = arguments;
const { MailGlue } = ChromeUtils.importESModule("resource:///modules/MailGlue.sys.mjs");
await MailGlue.afterStartUp;
const info = Cc["@mozilla.org/login-manager/loginInfo;1"].createInstance(Ci.nsILoginInfo);
info.init(origin, null, realm, user, password, "", "");
const found = await Services.logins.searchLoginsAsync({origin, httpRealm: realm});
for (const login of found) {
  if (login.username == user) {
    await Services.logins.modifyLoginAsync(login, info);
    return "updated";
  }
}
await Services.logins.addLoginAsync(info);
return "added";
"""

REMOVE_LOGIN = """
const [origin, realm, user] = arguments;
const { MailGlue } = ChromeUtils.importESModule("resource:///modules/MailGlue.sys.mjs");
await MailGlue.afterStartUp;
let n = 0;
for (const login of await Services.logins.searchLoginsAsync({origin, httpRealm: realm})) {
  if (login.username == user) {
    await Services.logins.removeLoginAsync(login);
    n++;
  }
}
return n;
"""


def save_login(profile: Path, origin: str, realm: str, user: str, password: str) -> str:
    """Have Thunderbird store (or update) this HTTP login; returns "added" or "updated"."""
    return str(run_script(profile, SAVE_LOGIN, [origin, realm, user, password]))


def remove_login(profile: Path, origin: str, realm: str, user: str) -> int:
    """Have Thunderbird forget this HTTP login; returns how many it removed."""
    return int(run_script(profile, REMOVE_LOGIN, [origin, realm, user]) or 0)
