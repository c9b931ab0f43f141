#!/usr/bin/env bash
# Make sure a headless Chromium is installed (Debian's `chromium` package) and print the
# path of its binary on stdout. The browser test of the replay report calls it
# (tests/report/test_report_browser.py), so CI, which runs as root on a fresh machine with
# apt, installs it on first use; later runs find it and return at once.
#
#   CHROMIUM="$(bash tests/report/ensure_chromium.sh)" && "$CHROMIUM" --version
#
# Environment: CHROMIUM names a binary to use instead. Progress goes to stderr.
set -euo pipefail

find_chromium() {
    local candidate
    for candidate in "${CHROMIUM:-}" chromium chromium-browser google-chrome; do
        [[ -n "${candidate}" ]] || continue
        if command -v "${candidate}" >/dev/null 2>&1; then
            command -v "${candidate}"
            return 0
        fi
    done
    return 1
}

if found="$(find_chromium)"; then
    echo "${found}"
    exit 0
fi

# Parallel test workers (pytest-xdist) may get here at once: apt-get fails at once on a dpkg
# lock another apt-get holds, so they install one after the other, and the later ones find
# the browser the first installed.
exec 9>"${TMPDIR:-/tmp}/bouncewatch-ensure-chromium.lock"
flock 9
if found="$(find_chromium)"; then
    echo "${found}"
    exit 0
fi

if [[ "$(id -u)" != 0 ]] && ! command -v sudo >/dev/null 2>&1; then
    echo "ensure_chromium.sh: chromium is not installed and this user cannot install it" \
        "(run: apt-get install chromium)" >&2
    exit 1
fi
SUDO=""
[[ "$(id -u)" == 0 ]] || SUDO="sudo -n"

echo "ensure_chromium.sh: installing Debian's chromium package with apt-get (once)" >&2
start=${SECONDS}
export DEBIAN_FRONTEND=noninteractive
${SUDO} apt-get update -q >&2
${SUDO} apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >&2
echo "ensure_chromium.sh: installed in $((SECONDS - start))s" >&2
find_chromium
