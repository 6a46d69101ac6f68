#!/usr/bin/env bash
# Builds the operator image with podman (or Docker), here and on a workstation alike.
#
#   hack/image.sh [image]     build the image (default tag: localhost/chargeback-operator:<version>)
#   hack/image.sh setup       only write the container settings this machine kind needs
#
# The Containerfile's default base is UBI 9 Python 3.11 (OpenShift). Where that base cannot be
# pulled (no container registry reachable, as on the project's CI machines), a Debian 12 base with
# python3 is built from Debian packages with mmdebstrap, once, and passed as BASE. The host's CA
# bundle is given to the build as a secret (pip behind a TLS-intercepting proxy): mounted for the
# install step only, never in a layer. Idempotent: a second run reuses the base and podman's layer cache.
set -euo pipefail
cd "$(dirname "$0")/.."

DEFAULT_BASE="registry.access.redhat.com/ubi9/python-311:latest"
LOCAL_BASE="localhost/chargeback-base:debian12-python3"
DEPS_IMAGE="localhost/chargeback-deps:cache"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE="${IMAGE:-localhost/chargeback-operator:$VERSION}"
ENGINE="${ENGINE:-$(command -v podman || command -v docker || true)}"

log() { printf '[image %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# podman's default ulimits need CAP_SYS_RESOURCE and crun refuses a hybrid cgroup v1 layout;
# both are true of these VMs (../shared/REFERENCE.md section 7). Written only where missing.
setup() {
  local conf=/etc/containers/containers.conf
  if [ "$(id -u)" != 0 ] || [ -f "$conf" ] || [[ "$ENGINE" != *podman ]]; then
    return
  fi
  log "Writing $conf (ulimits without CAP_SYS_RESOURCE, runc for cgroup v1)"
  mkdir -p /etc/containers
  cat >"$conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
EOF
}

# A Debian 12 root file system with python3, imported as an image: no registry needed. The body
# runs in a subshell so that its EXIT trap removes the archive when it ends, and only then (a
# RETURN trap set in a function stays set and fires again when its caller returns, by which time
# the local variable is gone: `set -u` then fails the build).
local_base() (
  if "$ENGINE" image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
    log "Local base $LOCAL_BASE present"
    return
  fi
  command -v mmdebstrap >/dev/null || { log "mmdebstrap is missing: apt-get install mmdebstrap"; exit 1; }
  tar=$(mktemp --suffix=.tar)
  trap 'rm -f "$tar"' EXIT
  log "Building local base $LOCAL_BASE from Debian packages with mmdebstrap (about 1 min)"
  mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    bookworm "$tar" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main"
  "$ENGINE" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/sh"]' "$tar" "$LOCAL_BASE" >/dev/null 2>&1
  log "Imported $LOCAL_BASE"
)

build() {
  [ -n "$ENGINE" ] || { log "No container engine found: install podman (apt-get install podman buildah runc)"; exit 1; }
  setup
  local base="${BASE:-}"
  if [ -z "$base" ]; then
    if "$ENGINE" image inspect "$DEFAULT_BASE" >/dev/null 2>&1 || "$ENGINE" pull -q "$DEFAULT_BASE" >/dev/null 2>&1; then
      base="$DEFAULT_BASE"
    else
      log "Cannot pull $DEFAULT_BASE (no registry reachable); using a local Debian 12 base instead"
      local_base
      base="$LOCAL_BASE"
    fi
  fi
  local secrets=()
  if [ -f "$CA_BUNDLE" ]; then
    secrets=(--secret "id=build-ca,src=$CA_BUNDLE")
  fi
  # The dependency stage first, tagged: a later build reuses it from the layer cache as long as
  # pyproject.toml and the base are unchanged, and the prune below cannot remove it.
  log "Building the dependency layer $DEPS_IMAGE on $base"
  "$ENGINE" build -q -f Containerfile --target deps --build-arg "BASE=$base" "${secrets[@]}" \
    -t "$DEPS_IMAGE" . >/dev/null
  log "Building $IMAGE on $base"
  "$ENGINE" build -f Containerfile --build-arg "BASE=$base" "${secrets[@]}" -t "$IMAGE" .
  log "Built $IMAGE ($("$ENGINE" image inspect --format '{{.Size}}' "$IMAGE") bytes uncompressed)"
  prune
}

# Each build leaves its build stage, and the image it replaced, untagged: about 1.5 GB a build
# that nothing uses again. Only this project's labelled images are removed; the dependency layer
# stays cached (tagged as DEPS_IMAGE), an earlier untagged one goes.
prune() {
  local label freed=0 count
  for label in dev.chargeback.stage=build dev.chargeback.stage=deps dev.chargeback.base; do
    count=$("$ENGINE" image prune -f --filter "label=$label" 2>/dev/null | wc -l)
    freed=$((freed + count))
  done
  log "Removed $freed untagged images of earlier builds"
}

case "${1:-}" in
  setup) setup ;;
  base) local_base ;;
  "") build ;;
  *) IMAGE="$1" build ;;
esac
