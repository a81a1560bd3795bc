#!/usr/bin/env bash
# The screenshot in docs/app-guide.md: this example under `briefcase dev` on Linux
# (toga-gtk, in Xvfb), after a run of examples/ansible/site.yml against the loopback
# demo target (3 hosts).
#
#   examples/briefcase/screenshot.sh VENV [OUT]      (OUT: docs/img/briefcase-example.png)
#
# VENV: a venv with briefcase, toga-gtk, ansible-core<2.21, paramiko and ios_mp importable
# (docs/app-guide.md, "briefcase dev on Linux", says how it was made on Debian 12).
# Needs Xvfb (apt-get install xvfb) and, for the demo target, /usr/sbin/sshd.
set -euo pipefail
VENV=${1:?usage: screenshot.sh VENV [OUT]}
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT=${2:-$ROOT/docs/img/briefcase-example.png}
DISPLAY_NO=${SCREENSHOT_DISPLAY:-97}
DEMO="$(mktemp -d /tmp/iosmp-screenshot.XXXXXX)"
XPID="" APID=""
cleanup() {
    [ -n "$APID" ] && kill -- "-$APID" 2>/dev/null || true
    [ -n "$XPID" ] && kill "$XPID" 2>/dev/null || true
    "$VENV/bin/python" -m ios_mp.ansible.demo stop --dir "$DEMO" >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$VENV/bin/python" -m ios_mp.ansible.demo start --hosts 3 --dir "$DEMO" >/dev/null
Xvfb ":$DISPLAY_NO" -screen 0 1000x800x24 -nolisten tcp >"$DEMO/xvfb.log" 2>&1 &
XPID=$!
sleep 2
# ios-mp is not on an index yet: run in VENV (--no-isolation) where the checkout provides
# it, and install only the other requirements.
(cd "$HERE" && DISPLAY=":$DISPLAY_NO" IOS_MP_DEMO_DIR="$DEMO" setsid \
    "$VENV/bin/briefcase" dev --no-isolation \
    -C 'requires=["ansible-core>=2.16,<2.21", "paramiko"]' -- --run) >"$DEMO/app.log" 2>&1 &
APID=$!
for _ in $(seq 600); do
    grep -q "ios_mp Playbooks: " "$DEMO/app.log" && break
    kill -0 "$APID" 2>/dev/null || { cat "$DEMO/app.log"; exit 1; }
    sleep 0.5
done
grep "ios_mp Playbooks: " "$DEMO/app.log"
sleep 2  # let GTK draw the last output
mkdir -p "$(dirname "$OUT")"
DISPLAY=":$DISPLAY_NO" "$VENV/bin/python" - "$OUT" <<'PY'
import sys

import gi

gi.require_version("Gdk", "3.0")
from gi.repository import Gdk

# Xvfb has no window manager: GTK puts the 900x700 window at (100, 100), undecorated.
root = Gdk.get_default_root_window()
shot = Gdk.pixbuf_get_from_window(root, 100, 100, 900, 700)
shot.savev(sys.argv[1], "png", [], [])
print("saved", sys.argv[1])
PY
