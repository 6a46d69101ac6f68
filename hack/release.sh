#!/usr/bin/env bash
# Publishes a release at the one version in pyproject.toml (`make release`):
#
#   make release REGISTRY=host[:port]/path [INSECURE=1]
#
#   REGISTRY/chargeback-operator:VERSION           the operator image (hack/image.sh)
#   REGISTRY/chargeback-operator-bundle:vVERSION   the OLM bundle as an image (hack/bundle.py)
#   oci://REGISTRY/charts/chargeback-operator      the Helm chart, version VERSION, whose default
#                                                  image is the one pushed beside it
#
# INSECURE=1 speaks plain HTTP (podman --tls-verify=false, helm --plain-http). Credentials are the
# ones `podman login HOST` and `helm registry login HOST` stored.
#
# Nothing is pushed until everything is built and the registry has been checked: reachable,
# credentials where it asks for them, and none of the three artifacts there already (a release is
# never overwritten; raise the version in pyproject.toml). The chart goes last, because it is what
# users install and it names the image. If a push fails, the last lines say which artifacts were
# pushed and which were not.
set -euo pipefail
cd "$(dirname "$0")/.."

REGISTRY="${REGISTRY:-}"
INSECURE="${INSECURE:-}"
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

log() { printf '[release %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[release] error: %s\n' "$*" >&2; exit 1; }

[ -n "$REGISTRY" ] || die "REGISTRY is not set: make release REGISTRY=host[:port]/path (add INSECURE=1 for a plain-HTTP registry)"
REGISTRY="${REGISTRY%/}"
case "$REGISTRY" in
  *://*) die "REGISTRY=$REGISTRY has a scheme: give host[:port]/path (INSECURE=1 selects plain HTTP)" ;;
esac
HOST="${REGISTRY%%/*}"
if [ "$HOST" != "$REGISTRY" ] && [[ "${REGISTRY#*/}" =~ [^a-z0-9._/-] ]]; then
  die "REGISTRY=$REGISTRY: the path after the host may hold only lower-case letters, digits, '.', '_', '-' and '/'"
fi

# The Python environment (the bundle generator), podman, helm and operator-sdk: idempotent.
log "Checking the tools (make venv tools)"
make -s venv tools
PYTHON=.venv/bin/python
HELM="$(bash hack/tools.sh bin-dir)/helm"
OPERATOR_SDK="$(bash hack/tools.sh operator-sdk)"
ENGINE="${ENGINE:-$(command -v podman || true)}"
[ -n "$ENGINE" ] || die "podman is not installed: apt-get install podman buildah runc (or make tools)"

IMAGE="$REGISTRY/chargeback-operator:$VERSION"
BUNDLE_IMAGE="$REGISTRY/chargeback-operator-bundle:v$VERSION"
CHART_REF="oci://$REGISTRY/charts/chargeback-operator"
if [ -n "$INSECURE" ]; then
  SCHEME=http TLS=(--tls-verify=false) PLAIN=(--plain-http)
else
  SCHEME=https TLS=() PLAIN=()
fi

# --- Checks before anything is built or pushed -------------------------------------------------
reached=0
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$SCHEME://$HOST/v2/" 2>/dev/null) || reached=$?
# Nothing answered over HTTPS (refused, or a TLS handshake with a plain-HTTP server: curl 35).
if [ -z "$INSECURE" ] && [ "$code" = 000 ] &&
  curl -s -o /dev/null --max-time 10 "http://$HOST/v2/" 2>/dev/null; then
  die "registry $HOST does not answer HTTPS but answers plain HTTP: add INSECURE=1"
fi
case "$reached:$code" in
  *:200) ;;
  *:401)
    "$ENGINE" login --get-login "$HOST" >/dev/null 2>&1 ||
      die "registry $HOST asks for credentials and podman has none: podman login $HOST && $HELM registry login $HOST, then run make release again"
    ;;
  35:*) die "the TLS handshake with registry $HOST failed (curl error 35): check that it speaks HTTPS on this port" ;;
  51:* | 58:* | 60:* | 77:*)
    die "registry $HOST's TLS certificate is not trusted here (curl error $reached): add its CA to the system's trust store, or INSECURE=1 for a registry you trust without TLS"
    ;;
  *:000)
    die "registry $HOST is unreachable over $SCHEME (connection failed): check REGISTRY=$REGISTRY and that the registry runs"
    ;;
  *:400)
    [ -z "$INSECURE" ] || die "registry $HOST refused plain HTTP (HTTP 400): it speaks HTTPS, leave INSECURE unset"
    die "registry $HOST answered HTTP 400 on /v2/: it is not an OCI registry, or it is failing"
    ;;
  *) die "registry $HOST answered HTTP $code on /v2/: it is not an OCI registry, or it is failing" ;;
esac

refused() {  # $1: the tool's output; true when the registry refused the credentials
  case "$1" in *unauthorized* | *"authentication required"* | *"credential not found"* | *denied* | *401*) return 0 ;; esac
  return 1
}

tag_exists() {  # $1: repository, $2: tag; dies when the registry will not say
  local out
  if out=$("$ENGINE" search --list-tags --limit 100000 "${TLS[@]}" "$1" 2>&1); then
    awk 'NR > 1 {print $2}' <<<"$out" | grep -qxF "$2"
    return
  fi
  case "$out" in *404* | *NAME_UNKNOWN*) return 1 ;; esac
  refused "$out" && die "registry $HOST refused the credentials podman has for it: podman login $HOST, then run make release again"
  die "cannot list the tags of $1: $(echo "$out" | grep -v '^\s*$' | tail -1 | sed 's/^\s*\* //')"
}

chart_exists() {
  local out
  if out=$("$HELM" show chart "${PLAIN[@]}" "$CHART_REF" --version "$VERSION" 2>&1); then return 0; fi
  case "$out" in *"not found"* | *NAME_UNKNOWN* | *MANIFEST_UNKNOWN* | *404*) return 1 ;; esac
  refused "$out" && die "registry $HOST refused helm's credentials: $HELM registry login $HOST, then run make release again"
  die "cannot look up the chart $CHART_REF $VERSION: $(echo "$out" | tail -1)"
}

exists() {  # what already exists at this version, one per line
  if tag_exists "${IMAGE%:*}" "$VERSION"; then echo "image $IMAGE"; fi
  if tag_exists "${BUNDLE_IMAGE%:*}" "v$VERSION"; then echo "bundle $BUNDLE_IMAGE"; fi
  if chart_exists; then echo "chart $CHART_REF:$VERSION"; fi
}
found=$(exists) || exit 1
if [ -n "$found" ]; then
  die "version $VERSION is already released in $REGISTRY ($(echo "$found" | paste -sd, - | sed 's/,/, /g')): raise the version in pyproject.toml; releases are never overwritten"
fi

# --- Build everything -----------------------------------------------------------------------
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

log "Building the image $IMAGE"
bash hack/image.sh "$IMAGE"

log "Packaging the chart $VERSION with image $REGISTRY/chargeback-operator"
cp -r charts/chargeback-operator "$WORK/chargeback-operator"
sed -i "0,/^  repository: .*/s||  repository: $REGISTRY/chargeback-operator|" "$WORK/chargeback-operator/values.yaml"
"$HELM" lint --quiet "$WORK/chargeback-operator" >/dev/null
"$HELM" package "$WORK/chargeback-operator" --version "$VERSION" --app-version "$VERSION" -d "$WORK" >/dev/null
CHART_ARCHIVE="$WORK/chargeback-operator-$VERSION.tgz"

log "Generating the OLM bundle for $IMAGE"
"$PYTHON" hack/bundle.py --image "$IMAGE" --output "$WORK/bundle" --helm "$HELM"
"$OPERATOR_SDK" bundle validate "$WORK/bundle" --select-optional suite=operatorframework >/dev/null ||
  die "operator-sdk bundle validate refused the bundle: run make bundle and read its output"
"$ENGINE" build -q -f "$WORK/bundle/bundle.Dockerfile" -t "$BUNDLE_IMAGE" "$WORK/bundle" >/dev/null

# --- Push, in order, saying what went where ---------------------------------------------------
pushed=()
pending=("image $IMAGE" "bundle $BUNDLE_IMAGE" "chart $CHART_REF:$VERSION")

failed() {  # $1: the artifact, $2: the tool's output
  local why
  why=$(echo "$2" | grep -v '^\s*$' | tail -1)
  if refused "$2"; then
    why="the registry refused the credentials (podman login $HOST; $HELM registry login $HOST)"
  fi
  printf '[release] error: pushing the %s failed: %s\n' "$1" "$why" >&2
  printf '[release] pushed: %s\n' "$(IFS=,; echo "${pushed[*]:-nothing}" | sed 's/,/, /g')" >&2
  printf '[release] not pushed: %s\n' "$(IFS=,; echo "${pending[*]}" | sed 's/,/, /g')" >&2
  exit 1
}

push() {  # $1: the artifact's line, then the command
  local what="$1" out
  shift
  log "Pushing the $what"
  if ! out=$("$@" 2>&1); then failed "$what" "$out"; fi
  pushed+=("$what")
  pending=("${pending[@]:1}")
}

push "image $IMAGE" "$ENGINE" push -q "${TLS[@]}" "$IMAGE"
push "bundle $BUNDLE_IMAGE" "$ENGINE" push -q "${TLS[@]}" "$BUNDLE_IMAGE"
push "chart $CHART_REF:$VERSION" "$HELM" push "${PLAIN[@]}" "$CHART_ARCHIVE" "oci://$REGISTRY/charts"

log "Released $VERSION to $REGISTRY:"
log "  image  $IMAGE"
log "  bundle $BUNDLE_IMAGE"
log "  chart  $CHART_REF --version $VERSION"
log "Install: helm install chargeback $CHART_REF --version $VERSION -n chargeback-system --create-namespace${INSECURE:+ --plain-http}"
