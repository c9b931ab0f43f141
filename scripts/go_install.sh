# shellcheck shell=bash
# The Go side of scripts/ensure_helm.sh and scripts/ensure_promtool.sh, sourced by both: find
# the toolchain, and build a pinned tool with `go install` through the Go module proxy into
# the cache, where the binary appears only once it is whole.
#
#   use_go WHO              put go on PATH (also found in /usr/local/go or /usr/lib/go), or
#                           say that WHO needs it and exit 1
#   go_install_into BIN ARGS...
#                           `go install ARGS...` into a temporary GOBIN under BIN's cache
#                           directory, then move the one binary it built to BIN

use_go() {
    local who="$1" candidate
    if ! command -v go >/dev/null 2>&1; then
        for candidate in /usr/local/go/bin/go /usr/lib/go/bin/go; do
            if [[ -x "${candidate}" ]]; then
                PATH="$(dirname "${candidate}"):${PATH}"
                break
            fi
        done
    fi
    if ! command -v go >/dev/null 2>&1; then
        echo "${who}: the go toolchain is needed (apt-get install golang-go)" >&2
        exit 1
    fi
}

go_install_into() {
    local bin="$1" tmp_bin
    shift
    mkdir -p "$(dirname "${bin}")"
    # A temporary GOBIN then a rename, so an interrupted build never leaves a half binary.
    # BIN is <cache>/<tool>/<version>/bin/<tool>: stage beside the versions, on one filesystem.
    tmp_bin="$(mktemp -d "$(dirname "$(dirname "$(dirname "${bin}")")")/.install.XXXXXX")"
    # shellcheck disable=SC2064  # expand now: the variable is local
    trap "rm -rf '${tmp_bin}'" EXIT
    CGO_ENABLED=0 GOBIN="${tmp_bin}" GOFLAGS="${GOFLAGS:-} -trimpath" \
        nice -n 10 go install "$@" >&2
    mv -f "${tmp_bin}/$(basename "${bin}")" "${bin}"
}
