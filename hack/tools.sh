#!/usr/bin/env bash
# Installs or builds everything the tests and the demo need, skipping what is already there.
#
#   - Debian packages: prometheus (with promtool), postgresql; podman, buildah, runc and
#     mmdebstrap for the operator image (`make image`), with the container settings these
#     machines need (hack/image.sh setup)
#   - etcd, kube-apiserver, kube-controller-manager, kubectl and helm, built from the Go module
#     proxy into a versioned cache outside the repository (see docs/development.md).
#   - Prometheus 3 (as prometheus3), for the collector's anchored mode; Debian's 2.x stays the
#     default Prometheus of the tests.
#   - operator-sdk, which validates the OLM bundle; Debian's docker-registry, a real OCI registry
#     the release tests push to
#   - Thanos (sidecar and querier), the query path of OpenShift, in front of two Prometheus
#     replicas in the tests
#   - the test node's runtime and pause image (hack/node.sh), and kubelet, kube-scheduler and
#     kube-proxy built with the control plane.
#
# Idempotent: a second run prints what it found and exits in seconds.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
PROMETHEUS3_VERSION="${PROMETHEUS3_VERSION:-3.16.0}"
FOCUS_VALIDATOR_VERSION="${FOCUS_VALIDATOR_VERSION:-1.0.0}"
PERCLI_VERSION="${PERCLI_VERSION:-v0.52.0}"
OPERATOR_SDK_VERSION="${OPERATOR_SDK_VERSION:-v1.42.2}"
THANOS_VERSION="${THANOS_VERSION:-v0.42.4}"
CACHE_ROOT="${CHARGEBACK_CACHE:-$HOME/.cache/chargeback}"
BIN_DIR="$CACHE_ROOT/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION"
WORK_DIR="$CACHE_ROOT/build"

log() { printf '[tools %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

apt_install() {
  local missing=()
  command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
  # Statements are tested in a real browser (and printed to PDF by it).
  command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-dejavu-core)
  local tool
  # A real OCI registry for the release tests (`make release` pushes to it).
  command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
  for tool in podman buildah runc mmdebstrap; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  # podman's network for build steps (CNI bridge plugins, NAT through iptables) and its helpers
  # are recommends or suggestions of the package.
  if [[ " ${missing[*]} " == *" podman "* ]]; then
    missing+=(containernetworking-plugins iptables uidmap slirp4netns)
  fi
  if [ ${#missing[@]} -eq 0 ]; then
    log "Debian packages present: prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}'), alertmanager $(prometheus-alertmanager --version 2>&1 | head -1 | awk '{print $3}'), $(chromium --version 2>/dev/null | head -1), postgresql $(ls /usr/lib/postgresql), $(podman --version)"
    return
  fi
  log "Installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # The package starts system services we do not use; our fixtures run private instances.
  local service
  for service in prometheus prometheus-alertmanager docker-registry; do
    systemctl disable --now "$service" >/dev/null 2>&1 || service "$service" stop >/dev/null 2>&1 || true
  done
  pkill -x prometheus >/dev/null 2>&1 || true
  pkill -x docker-registry >/dev/null 2>&1 || true
  pkill -f '^/usr/bin/prometheus-alertmanager' >/dev/null 2>&1 || true
}

# The control plane, and the node components of the `node` tests (a real kubelet): one wrapper
# module and one `go build`, so the packages they share compile once.
K8S_COMMANDS=(kube-apiserver kube-controller-manager kubectl kubelet kube-scheduler kube-proxy)

build_k8s() {
  local cmd missing=()
  for cmd in "${K8S_COMMANDS[@]}"; do
    [ -x "$BIN_DIR/$cmd" ] || missing+=("$cmd")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "Kubernetes $K8S_VERSION present in $BIN_DIR (${K8S_COMMANDS[*]})"
    return
  fi
  local minor patch mod="$WORK_DIR/k8s-$K8S_VERSION"
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  patch=$(echo "$K8S_VERSION" | cut -d. -f3)
  log "Building Kubernetes $K8S_VERSION (missing: ${missing[*]}); a cold build of all takes 20-40 min on 2 cores"
  rm -rf "$mod"  # the wrapper is generated; start it afresh so a failed attempt leaves no trace
  mkdir -p "$mod" "$BIN_DIR"
  cd "$mod"
  go mod init chargeback.local/k8s-tools >/dev/null 2>&1
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  # Staging modules are required as v0.0.0 and replaced by ./staging paths upstream; a wrapper
  # module ignores those replaces, so point each at its published v0.<minor>.<patch> release.
  awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$gomod" | sort -u | while read -r m; do
    go mod edit -replace "$m=$m@v0.$minor.$patch"
  done
  go mod edit -require "k8s.io/kubernetes@$K8S_VERSION"
  log "Resolving modules"
  local packages=() tools=()
  for cmd in "${K8S_COMMANDS[@]}"; do
    packages+=("k8s.io/kubernetes/cmd/$cmd")
    tools+=("k8s.io/kubernetes/cmd/$cmd@$K8S_VERSION")
  done
  go get -tool "${tools[@]}"
  local pkg=k8s.io/component-base/version
  local ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  log "Compiling (progress: packages built so far are listed with -v)"
  CGO_ENABLED=0 go build -v -trimpath -ldflags "$ldflags" -o "$BIN_DIR/" "${packages[@]}" 2>&1 |
    awk '{n++; if (n % 200 == 0) {printf "[tools] compiled %d packages (last: %s)\n", n, $0; fflush()}}'
  for cmd in "${K8S_COMMANDS[@]}"; do
    [ -x "$BIN_DIR/$cmd" ] || { log "$cmd build failed"; exit 1; }
  done
  log "Built $("$BIN_DIR/kube-apiserver" --version)"
}

build_etcd() {
  if [ -x "$BIN_DIR/etcd" ]; then
    log "etcd $ETCD_VERSION present"
    return
  fi
  local mod="$WORK_DIR/etcd-$ETCD_VERSION"
  log "Building etcd $ETCD_VERSION"
  mkdir -p "$mod" "$BIN_DIR"
  cd "$mod"
  [ -f go.mod ] || go mod init chargeback.local/etcd-tools >/dev/null 2>&1
  go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/etcd" go.etcd.io/etcd/server/v3
  log "Built $("$BIN_DIR/etcd" --version | head -1)"
}

build_helm() {
  if [ -x "$BIN_DIR/helm" ]; then
    log "helm $HELM_VERSION present"
    return
  fi
  local minor
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  log "Building helm $HELM_VERSION"
  mkdir -p "$BIN_DIR"
  CGO_ENABLED=0 GOBIN="$BIN_DIR" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  log "Built helm $("$BIN_DIR/helm" version --short)"
}

build_prometheus3() {
  # Prometheus 3.x is published as module versions v0.3XX.Y; built into a directory of its own
  # (never on PATH, where it would shadow Debian's prometheus) and linked in as prometheus3.
  local dir="$CACHE_ROOT/bin/prometheus-$PROMETHEUS3_VERSION"
  local minor patch
  minor=$(echo "$PROMETHEUS3_VERSION" | cut -d. -f2)
  patch=$(echo "$PROMETHEUS3_VERSION" | cut -d. -f3)
  if [ ! -x "$dir/prometheus" ]; then
    log "Building Prometheus $PROMETHEUS3_VERSION (about 3 min on 2 cores)"
    mkdir -p "$dir"
    CGO_ENABLED=0 GOBIN="$dir" go install -trimpath -tags remove_all_sd \
      -ldflags "-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS3_VERSION" \
      "github.com/prometheus/prometheus/cmd/prometheus@v0.3$(printf '%02d' "$minor").$patch"
    log "Built $("$dir/prometheus" --version 2>&1 | head -1)"
  else
    log "Prometheus $PROMETHEUS3_VERSION present"
  fi
  mkdir -p "$BIN_DIR"
  ln -sfn "$dir/prometheus" "$BIN_DIR/prometheus3"
}

install_focus_validator() {
  # The FinOps Foundation's FOCUS validator, in a virtualenv of its own (its pins, e.g. numpy 1.x,
  # are not ours). pandera 0.17 needs multimethod before 1.11 (`overload` went away).
  local dir="$CACHE_ROOT/focus-validator-$FOCUS_VALIDATOR_VERSION"
  if [ -x "$dir/bin/focus-validator" ] && [ -f "$dir/.installed" ]; then
    log "focus-validator $FOCUS_VALIDATOR_VERSION present"
    return
  fi
  log "Installing focus-validator $FOCUS_VALIDATOR_VERSION into $dir"
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/pip" install -q --disable-pip-version-check "focus-validator==$FOCUS_VALIDATOR_VERSION" "multimethod==1.10"
  touch "$dir/.installed"
}

build_percli() {
  # Perses' CLI, whose linter validates the generated Perses dashboards. The module proxy refuses
  # the version list of github.com/perses/perses (so `go install ...@version`, which checks for
  # deprecation, fails): a wrapper module requires the exact release and builds the command.
  local dir="$CACHE_ROOT/bin/percli-$PERCLI_VERSION" mod="$WORK_DIR/percli-$PERCLI_VERSION"
  if [ -x "$dir/percli" ]; then
    log "percli $PERCLI_VERSION present"
    return
  fi
  log "Building percli $PERCLI_VERSION (about 3 min on 2 cores)"
  rm -rf "$mod"
  mkdir -p "$mod" "$dir"
  cd "$mod"
  go mod init chargeback.local/percli >/dev/null 2>&1
  go mod edit -require="github.com/perses/perses@$PERCLI_VERSION"
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/perses/perses/cmd/percli"\n' > tools.go
  go mod tidy
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir/percli" github.com/perses/perses/cmd/percli
  log "Built percli $PERCLI_VERSION"
}

build_operator_sdk() {
  # operator-sdk validates the OLM bundle (`make bundle`, `make release`). Its module has no
  # replace directives; it is built inside its own module directory with its own go.sum, as the
  # proxy refuses the version list. The openpgp tag avoids gpgme (cgo) in containers/image.
  local dir="$CACHE_ROOT/bin/operator-sdk-$OPERATOR_SDK_VERSION" src
  if [ -x "$dir/operator-sdk" ]; then
    log "operator-sdk $OPERATOR_SDK_VERSION present"
    return
  fi
  log "Building operator-sdk $OPERATOR_SDK_VERSION (about 3 min on 2 cores)"
  mkdir -p "$dir" "$WORK_DIR"
  src=$(cd "$WORK_DIR" && go mod download -json "github.com/operator-framework/operator-sdk@$OPERATOR_SDK_VERSION" |
    sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
  (cd "$src" && CGO_ENABLED=0 GOTOOLCHAIN=local go build -p 1 -trimpath -tags containers_image_openpgp \
    -ldflags "-s -w -X github.com/operator-framework/operator-sdk/internal/version.Version=$OPERATOR_SDK_VERSION" \
    -o "$dir/operator-sdk" ./cmd/operator-sdk)
  log "Built $("$dir/operator-sdk" version | cut -d, -f1)"
}

build_thanos() {
  # The querier OpenShift puts in front of its Prometheus replicas. Its go.mod has replace
  # directives, so `go install` cannot build it: it is built inside its own module directory.
  # v0.42.5 needs a newer Go than these machines have.
  local dir="$CACHE_ROOT/bin/thanos-$THANOS_VERSION" src
  if [ -x "$dir/thanos" ]; then
    log "thanos $THANOS_VERSION present"
    return
  fi
  log "Building thanos $THANOS_VERSION (about 3 min on 2 cores)"
  mkdir -p "$dir" "$WORK_DIR"
  src=$(cd "$WORK_DIR" && go mod download -json "github.com/thanos-io/thanos@$THANOS_VERSION" |
    sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
  (cd "$src" && CGO_ENABLED=0 GOTOOLCHAIN=local go build -p 1 -trimpath -tags netgo,slicelabels \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=${THANOS_VERSION#v}" \
    -o "$dir/thanos.new" ./cmd/thanos)
  mv "$dir/thanos.new" "$dir/thanos"
  log "Built $("$dir/thanos" --version 2>&1 | head -1)"
}

# The Go builds' compile and module caches (about 5 and 3 GB for Kubernetes) serve no purpose once
# the binaries are in the versioned cache: they are private to these builds and removed after them.
export GOCACHE="$WORK_DIR/go-build" GOMODCACHE="$WORK_DIR/go-mod"

clean_go_caches() {
  [ -d "$GOCACHE" ] || [ -d "$GOMODCACHE" ] || return 0
  log "Removing the builds' Go caches ($(du -sh "$WORK_DIR" 2>/dev/null | cut -f1) in $WORK_DIR)"
  go clean -cache -modcache
  rm -rf "$GOCACHE" "$GOMODCACHE"
}

main() {
  local start=$SECONDS
  apt_install
  bash "$(dirname "$0")/image.sh" setup
  bash "$(dirname "$0")/node.sh"
  build_etcd
  build_helm
  build_k8s
  build_prometheus3
  install_focus_validator
  build_percli
  build_operator_sdk
  build_thanos
  ln -sfn "$BIN_DIR" "$CACHE_ROOT/bin/current"
  clean_go_caches
  log "All tools ready in $BIN_DIR ($((SECONDS - start)) s)"
}

case "${1:-all}" in
  bin-dir) echo "$BIN_DIR" ;;
  operator-sdk) echo "$CACHE_ROOT/bin/operator-sdk-$OPERATOR_SDK_VERSION/operator-sdk" ;;
  thanos) echo "$CACHE_ROOT/bin/thanos-$THANOS_VERSION/thanos" ;;
  all) main ;;
  *) echo "usage: $0 [all|bin-dir|operator-sdk|thanos]" >&2; exit 2 ;;
esac
