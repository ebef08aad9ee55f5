#!/bin/sh
# Make sure Debian packages are present: install them when root, else say what to install.
# Arguments are command:package pairs.
set -eu
missing=""
for pair in "$@"; do
    cmd=${pair%%:*}
    pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    # The broker is started by the tests on a loopback port, not as a system service.
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now mosquitto >/dev/null 2>&1 || true; fi
    echo "debs: installed$missing"
else
    echo "error: panelcap needs Debian packages:$missing (run: sudo apt-get install$missing)" >&2
    exit 1
fi
