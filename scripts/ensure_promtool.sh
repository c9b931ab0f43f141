#!/usr/bin/env bash
# Install a pinned promtool (Prometheus' rule checker and unit-test runner) with `go install`
# through the Go module proxy, into a cache directory that survives between runs, and print
# the binary's path on stdout. The chart tests call it (tests/helm/test_prometheus_rules.py),
# as they call scripts/ensure_helm.sh for helm, so CI needs nothing installed beforehand but
# Go; both build through scripts/go_install.sh.
#
#   PROMTOOL="$(bash scripts/ensure_promtool.sh)" && "$PROMTOOL" --version
#
# Reuses the cached binary when it is already there (a cached run takes milliseconds).
# Environment:
#   BOUNCEWATCH_CACHE_DIR        cache root (default: $HOME/.cache/bouncewatch)
#   BOUNCEWATCH_PROMTOOL_VERSION Prometheus module version (default: the pinned one below;
#                                Prometheus 3.x is published as module versions v0.3xx.y)
# Progress goes to stderr, so stdout is only the path.
set -euo pipefail

PROMTOOL_VERSION="${BOUNCEWATCH_PROMTOOL_VERSION:-v0.316.0}"
CACHE_DIR="${BOUNCEWATCH_CACHE_DIR:-${HOME:-/tmp}/.cache/bouncewatch}"
BIN_DIR="${CACHE_DIR}/promtool/${PROMTOOL_VERSION}/bin"
PROMTOOL_BIN="${BIN_DIR}/promtool"

if [[ -x "${PROMTOOL_BIN}" ]] && "${PROMTOOL_BIN}" --version >/dev/null 2>&1; then
    echo "${PROMTOOL_BIN}"
    exit 0
fi

# shellcheck source=scripts/go_install.sh
source "$(dirname "${BASH_SOURCE[0]}")/go_install.sh"
use_go ensure_promtool.sh

echo "ensure_promtool.sh: installing promtool ${PROMTOOL_VERSION} with go install (once; cached in ${BIN_DIR})" >&2
start=${SECONDS}
# remove_all_sd: leave out the service-discovery plugins (AWS, Azure, Kubernetes, ...), which
# `check rules` and `test rules` never use and which are most of the build time.
go_install_into "${PROMTOOL_BIN}" -tags remove_all_sd -ldflags "-s -w" \
    "github.com/prometheus/prometheus/cmd/promtool@${PROMTOOL_VERSION}"
echo "ensure_promtool.sh: built in $((SECONDS - start))s" >&2
"${PROMTOOL_BIN}" --version >&2
echo "${PROMTOOL_BIN}"
