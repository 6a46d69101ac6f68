#!/usr/bin/env bash
# For people with Docker: a kind cluster with Prometheus, the chart with a local image, the
# examples applied, and the reports shown. Not run by CI (no container engine there).
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER=${CLUSTER:-chargeback}
IMAGE=${IMAGE:-chargeback-operator:dev}
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER"
helm repo add prometheus-community https://prometheus-community.github.io/helm-charts >/dev/null
helm upgrade --install prometheus prometheus-community/prometheus -n monitoring --create-namespace --wait
make image IMAGE="$IMAGE"
kind load docker-image "$IMAGE" --name "$CLUSTER"
kubectl apply -f charts/chargeback-operator/crds/
helm upgrade --install chargeback charts/chargeback-operator -n chargeback-system --create-namespace \
  --set image.repository="${IMAGE%%:*}" --set image.tag="${IMAGE##*:}" \
  --set prometheus.url=http://prometheus-server.monitoring.svc \
  --set prometheus.tokenFile= --set prometheus.caFile= --set openshift.monitoringView=false --wait
kubectl apply -f docs/examples/tierpricing.yaml
kubectl create namespace chargeback --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f docs/examples/usagereport-monthly.yaml
sleep 30
kubectl get tierpricings,usagereports -A
