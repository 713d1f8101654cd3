#!/usr/bin/env sh
# Install Debian's chromium for the browser tests (tests/test_serve_browser.py).
# Playwright drives this system browser; nothing is downloaded by `playwright install`.
# fonts-noto-cjk draws the Korean text (else boxes in screenshots), fonts-noto-color-emoji 👍/👎.
set -eu
if [ -x /usr/bin/chromium ] && fc-list 2>/dev/null | grep -qi "noto.*cjk"; then
    echo "chromium already installed: /usr/bin/chromium"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium fonts-noto-cjk fonts-noto-color-emoji
/usr/bin/chromium --version || true
