#!/usr/bin/env bash
# What the `node` tests need besides the Go-built kubelet, kube-scheduler and kube-proxy
# (hack/tools.sh builds those with the control plane):
#   - Debian's containerd (1.6.20: kubelet 1.36 accepts it; it only logs that RuntimeConfig is
#     unimplemented, and takes the cgroup driver from its own configuration), runc, CNI plugins
#     and iptables;
#   - the pause image, built here from hack/pause/pause.c (no registry to pull one from), saved
#     as an archive the node's containerd imports.
# Idempotent: a second run prints what it found.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE_ROOT="${CHARGEBACK_CACHE:-$HOME/.cache/chargeback}"
PAUSE_IMAGE="localhost/chargeback-pause:1"
PAUSE_ARCHIVE="$CACHE_ROOT/images/chargeback-pause-1.tar"

log() { printf '[node %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

packages() {
  local missing=() tool
  for tool in containerd ctr runc iptables; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  if [ ${#missing[@]} -eq 0 ]; then
    log "Node packages present: $(containerd --version | awk '{print $3}'), $(runc --version | head -1)"
    return
  fi
  # ctr comes with containerd.
  local wanted=()
  for tool in "${missing[@]}"; do
    case "$tool" in ctr) wanted+=(containerd) ;; *) wanted+=("$tool") ;; esac
  done
  log "Installing Debian packages: ${wanted[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${wanted[@]}"
  # The package enables a system containerd; the tests run their own.
  systemctl disable --now containerd >/dev/null 2>&1 || true
}

# A subshell, so that the EXIT trap removes the work directory when it ends (see hack/image.sh).
pause_image() (
  if [ -s "$PAUSE_ARCHIVE" ]; then
    log "Pause image present: $PAUSE_ARCHIVE"
    return
  fi
  log "Building $PAUSE_IMAGE from hack/pause/pause.c"
  local work ctr
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  gcc -static -Os -Wall -Wextra -Werror -o "$work/pause" hack/pause/pause.c
  ctr=$(buildah from scratch)
  buildah copy "$ctr" "$work/pause" /pause >/dev/null
  buildah config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
  buildah commit -q "$ctr" "$PAUSE_IMAGE" >/dev/null
  buildah rm "$ctr" >/dev/null
  mkdir -p "$(dirname "$PAUSE_ARCHIVE")"
  podman save -q --format docker-archive -o "$work/pause.tar" "$PAUSE_IMAGE"
  mv "$work/pause.tar" "$PAUSE_ARCHIVE"
  log "Saved $PAUSE_ARCHIVE ($(stat -c %s "$PAUSE_ARCHIVE") bytes)"
)

case "${1:-all}" in
  all) packages; pause_image ;;
  pause-archive) echo "$PAUSE_ARCHIVE" ;;
  *) echo "usage: $0 [all|pause-archive]" >&2; exit 2 ;;
esac
