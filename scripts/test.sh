#!/bin/sh
# The whole test suite, on a fresh machine: installs calsync with its test
# dependencies and the real third-party peers the tests talk to, then runs it.
# Peers that cannot be installed make the tests that need them FAIL (not skip).
set -eu
cd "$(dirname "$0")/.."
SHARED="${CALSYNC_SHARED:-$(cd .. && pwd)/shared}"
export CALSYNC_SHARED="$SHARED"
if [ "$(id -u)" = 0 ] && [ -x "$SHARED/peers/install.sh" ]; then
  "$SHARED/peers/install.sh" all
  # libpalm-perl is the palm store's test oracle (tests/stores/palm)
  perl -MPalm::Datebook -e1 2>/dev/null || {
    apt-get update -qq >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libpalm-perl >/dev/null
  }
  # pffexport (pff-tools, libpff's own exporter) is the pst store's test oracle
  # (tests/stores/pst); curl reads the subscription feeds (tests/gateway/test_feeds.py)
  { command -v pffexport && command -v curl; } >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pff-tools curl >/dev/null
  }
  # Debian's chromium is the real browser the web page is tested in (tests/gateway/test_web_browser.py,
  # driven by Playwright from the test extra; Playwright's own browsers cannot be downloaded)
  command -v chromium >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  }
  # ip netns makes the phone on the LAN of tests/gateway/test_lan.py (another namespace)
  command -v ip >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iproute2 >/dev/null
  }
  # systemd-analyze checks the daemon's service unit (tests/gateway/test_service.py)
  command -v systemd-analyze >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
  }
fi
python3 -m pip install -q -e '.[test]'
ruff check .
mypy
exec python3 -m pytest -n 2 -q "$@"
