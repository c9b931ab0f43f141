#!/usr/bin/env bash
# Install a pinned helm CLI with `go install` through the Go module proxy, into a cache
# directory that survives between runs, and print the binary's path on stdout.
#
#   HELM="$(scripts/ensure_helm.sh)" && "$HELM" version
#
# Reuses the cached binary when it is already there (a cached run takes milliseconds).
# Environment:
#   BOUNCEWATCH_CACHE_DIR  cache root (default: $HOME/.cache/bouncewatch)
#   BOUNCEWATCH_HELM_VERSION  helm module version (default: the pinned one below)
# Progress goes to stderr, so stdout is only the path.
set -euo pipefail

HELM_VERSION="${BOUNCEWATCH_HELM_VERSION:-v3.22.0}"
CACHE_DIR="${BOUNCEWATCH_CACHE_DIR:-${HOME:-/tmp}/.cache/bouncewatch}"
BIN_DIR="${CACHE_DIR}/helm/${HELM_VERSION}/bin"
HELM_BIN="${BIN_DIR}/helm"

if [[ -x "${HELM_BIN}" ]] && "${HELM_BIN}" version --short >/dev/null 2>&1; then
    echo "${HELM_BIN}"
    exit 0
fi

# shellcheck source=scripts/go_install.sh
source "$(dirname "${BASH_SOURCE[0]}")/go_install.sh"
use_go ensure_helm.sh

major="${HELM_VERSION%%.*}"  # v3
module="helm.sh/helm/${major}"

echo "ensure_helm.sh: installing helm ${HELM_VERSION} with go install (once; cached in ${BIN_DIR})" >&2
start=${SECONDS}
# Reproduce the ldflags of helm's release build (its Makefile): the version stamp, and the
# default Kubernetes version for `helm template`/`helm lint`, derived from the client-go
# module helm is built with (v0.N.x -> 1.N). Without them helm reports v1.20 as the cluster
# version and charts with a kubeVersion constraint fail to render.
gomod="$(go mod download -json "${module}@${HELM_VERSION}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
client_go="$(sed -n 's/^[[:space:]]*k8s\.io\/client-go v\([0-9]*\)\.\([0-9]*\)\..*/\1 \2/p' "${gomod}" | head -n 1)"
if [[ -z "${client_go}" ]]; then
    echo "ensure_helm.sh: cannot find the client-go version in ${gomod}" >&2
    exit 1
fi
read -r cg_major cg_minor <<<"${client_go}"
kube_major=$((cg_major + 1))
kube_minor="${cg_minor}"
ldflags="-s -w -X ${module}/internal/version.version=${HELM_VERSION}"
ldflags+=" -X ${module}/internal/version.gitTreeState=clean"
for pkg in pkg/lint/rules pkg/chartutil; do
    ldflags+=" -X ${module}/${pkg}.k8sVersionMajor=${kube_major}"
    ldflags+=" -X ${module}/${pkg}.k8sVersionMinor=${kube_minor}"
done

go_install_into "${HELM_BIN}" -ldflags "${ldflags}" "${module}/cmd/helm@${HELM_VERSION}"
echo "ensure_helm.sh: built in $((SECONDS - start))s" >&2
"${HELM_BIN}" version --short >&2
echo "ensure_helm.sh: default Kubernetes version for templates: ${kube_major}.${kube_minor}" >&2
echo "${HELM_BIN}"
