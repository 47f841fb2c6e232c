#!/usr/bin/env bash
# Delete the TPU VM / pod slice (and its queued resource, if it came from one). Results left on
# the workers' disks are lost: run fetch_results.sh first.
#
#   TPU_NAME=jaxsteer tpu_scripts/delete.sh
#   QUEUED=1 QR_ID=jaxsteer-qr tpu_scripts/delete.sh
set -euo pipefail

PROJECT="${PROJECT:-}"                      # GCP project id (default: gcloud's current one)
ZONE="${ZONE:-us-west4-a}"
TPU_NAME="${TPU_NAME:-jaxsteer}"
QUEUED="${QUEUED:-0}"                       # 1 = it was created with QUEUED=1
QR_ID="${QR_ID:-${TPU_NAME}-qr}"            # queued-resource id (QUEUED=1)
DRY_RUN="${DRY_RUN:-0}"                     # 1 = print the gcloud commands, run nothing

run() {  # runs a command, or prints it (shell-quoted) when DRY_RUN=1
  if [[ "$DRY_RUN" == 1 ]]; then printf '+'; printf ' %q' "$@"; printf '\n'; else "$@"; fi
}

if [[ -z "$PROJECT" && "$DRY_RUN" != 1 ]]; then
  PROJECT="$(gcloud config get-value project 2>/dev/null || true)"
fi
if [[ -z "$PROJECT" ]]; then echo "delete.sh: set PROJECT" >&2; exit 2; fi
where=(--project "$PROJECT" --zone "$ZONE")

if [[ "$QUEUED" == 1 ]]; then
  # --force also deletes the node the queued resource created.
  run gcloud compute tpus queued-resources delete "$QR_ID" "${where[@]}" --force --quiet
else
  run gcloud compute tpus tpu-vm delete "$TPU_NAME" "${where[@]}" --quiet
fi
