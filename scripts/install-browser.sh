#!/usr/bin/env sh
# Install Debian's Chromium for the report's browser test (tests/report/), if it is not there yet.
# Idempotent: does nothing when /usr/bin/chromium exists. Needs root (CI) or sudo; never downloads a browser
# through Playwright (the test drives the system Chromium with Playwright's Python API).
set -eu
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    echo "chromium present: $CHROMIUM"
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-browser.sh: $CHROMIUM is missing and this user cannot install packages (not root, no sudo);" >&2
    echo "the browser test will be skipped." >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
test -x "$CHROMIUM" && echo "chromium installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
