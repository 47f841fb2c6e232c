#!/usr/bin/env bash
# Create a Cloud TPU VM or pod slice for jaxsteer, directly or through a queued resource.
#
#   PROJECT=my-proj ZONE=us-west4-a ACCELERATOR_TYPE=v5litepod-8 tpu_scripts/create.sh
#   QUEUED=1 SPOT=1 ACCELERATOR_TYPE=v5p-64 ZONE=us-east5-a tpu_scripts/create.sh
#
# Authentication is gcloud's own (`gcloud auth login`); nothing secret lives in this repo.
set -euo pipefail

PROJECT="${PROJECT:-}"                          # GCP project id (default: gcloud's current one)
ZONE="${ZONE:-us-west4-a}"                      # a zone that has the accelerator type
TPU_NAME="${TPU_NAME:-jaxsteer}"                # name of the TPU VM / node
ACCELERATOR_TYPE="${ACCELERATOR_TYPE:-v5litepod-8}"  # e.g. v5litepod-8, v5p-64, v6e-8
RUNTIME_VERSION="${RUNTIME_VERSION:-}"          # TPU software version (default: by accelerator)
QUEUED="${QUEUED:-0}"                           # 1 = request through queued resources
QR_ID="${QR_ID:-${TPU_NAME}-qr}"                # queued-resource id (QUEUED=1)
SPOT="${SPOT:-0}"                               # 1 = spot (preemptible) capacity
WAIT="${WAIT:-1}"                               # 1 = wait until a queued resource is ACTIVE
POLL_S="${POLL_S:-60}"                          # seconds between queued-resource polls
DRY_RUN="${DRY_RUN:-0}"                         # 1 = print the gcloud commands, run nothing

run() {  # runs a command, or prints it (shell-quoted) when DRY_RUN=1
  if [[ "$DRY_RUN" == 1 ]]; then printf '+'; printf ' %q' "$@"; printf '\n'; else "$@"; fi
}

if [[ -z "$PROJECT" && "$DRY_RUN" != 1 ]]; then
  PROJECT="$(gcloud config get-value project 2>/dev/null || true)"
fi
if [[ -z "$PROJECT" ]]; then
  echo "create.sh: set PROJECT (or run: gcloud config set project ID)" >&2
  exit 2
fi

if [[ -z "$RUNTIME_VERSION" ]]; then
  # Each TPU generation has its own base image; these are the JAX ones Google documents.
  case "$ACCELERATOR_TYPE" in
    v5litepod-*|v5e-*) RUNTIME_VERSION="v2-alpha-tpuv5-lite" ;;
    v5p-*) RUNTIME_VERSION="v2-alpha-tpuv5" ;;
    v6e-*) RUNTIME_VERSION="v2-alpha-tpuv6e" ;;
    v4-*|v3-*|v2-*) RUNTIME_VERSION="tpu-ubuntu2204-base" ;;
    *) echo "create.sh: set RUNTIME_VERSION for $ACCELERATOR_TYPE" >&2; exit 2 ;;
  esac
fi

common=(--project "$PROJECT" --zone "$ZONE" --accelerator-type "$ACCELERATOR_TYPE")
spot=()
if [[ "$SPOT" == 1 ]]; then spot=(--spot); fi

if [[ "$QUEUED" != 1 ]]; then
  run gcloud compute tpus tpu-vm create "$TPU_NAME" "${common[@]}" \
    --version "$RUNTIME_VERSION" "${spot[@]}"
  exit 0
fi

# A queued resource waits for capacity instead of failing at once, which large slices need.
run gcloud compute tpus queued-resources create "$QR_ID" "${common[@]}" \
  --node-id "$TPU_NAME" --runtime-version "$RUNTIME_VERSION" "${spot[@]}"
if [[ "$WAIT" != 1 || "$DRY_RUN" == 1 ]]; then exit 0; fi

while true; do
  state="$(gcloud compute tpus queued-resources describe "$QR_ID" \
    --project "$PROJECT" --zone "$ZONE" --format='value(state.state)')"
  echo "$(date -u +%H:%M:%S) queued resource $QR_ID: $state"
  case "$state" in
    ACTIVE) exit 0 ;;
    FAILED|SUSPENDED) echo "create.sh: $QR_ID is $state" >&2; exit 1 ;;
  esac
  sleep "$POLL_S"
done
