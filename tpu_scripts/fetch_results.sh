#!/usr/bin/env bash
# Bring every worker's survey records home and merge them into one table.
#
# Each host wrote its own part under REMOTE_DIR/results/RUN_NAME. Without OUT_BUCKET the parts
# are copied worker by worker with scp; with OUT_BUCKET each worker uploads its part to Cloud
# Storage and this machine downloads the lot. Then `jaxsteer survey-merge` joins them.
#
#   RUN_NAME=survey LOCAL_DIR=results/survey tpu_scripts/fetch_results.sh
#   OUT_BUCKET=gs://my-bucket/jaxsteer tpu_scripts/fetch_results.sh
set -euo pipefail

PROJECT="${PROJECT:-}"                      # GCP project id (default: gcloud's current one)
ZONE="${ZONE:-us-west4-a}"
TPU_NAME="${TPU_NAME:-jaxsteer}"
REMOTE_DIR="${REMOTE_DIR:-jaxsteer}"        # install folder from setup.sh (workers' home)
RUN_NAME="${RUN_NAME:-survey}"              # as given to launch.sh
LOCAL_DIR="${LOCAL_DIR:-results/$RUN_NAME}" # where the parts land here, one folder per worker
OUT_BUCKET="${OUT_BUCKET:-}"                # gs://bucket/prefix to go through; empty = scp
NUM_WORKERS="${NUM_WORKERS:-}"              # hosts in the slice (default: asked of gcloud)
MERGE_CMD="${MERGE_CMD-jaxsteer survey-merge}"  # run on LOCAL_DIR afterwards; set empty = skip
DRY_RUN="${DRY_RUN:-0}"                     # 1 = print the commands, run nothing

run() {  # runs a command, or prints it (shell-quoted) when DRY_RUN=1
  if [[ "$DRY_RUN" == 1 ]]; then printf '+'; printf ' %q' "$@"; printf '\n'; else "$@"; fi
}

if [[ -z "$PROJECT" && "$DRY_RUN" != 1 ]]; then
  PROJECT="$(gcloud config get-value project 2>/dev/null || true)"
fi
if [[ -z "$PROJECT" ]]; then echo "fetch_results.sh: set PROJECT" >&2; exit 2; fi
where=(--project "$PROJECT" --zone "$ZONE")
remote_out="$REMOTE_DIR/results/$RUN_NAME"
run mkdir -p "$LOCAL_DIR"

if [[ -n "$OUT_BUCKET" ]]; then
  # Every worker uploads into its own prefix (its hostname), so no two parts collide.
  upload="gcloud storage cp -r $(printf '%q' "$remote_out") \
$(printf '%q' "${OUT_BUCKET%/}/$RUN_NAME")/\$(hostname)"
  run gcloud compute tpus tpu-vm ssh "$TPU_NAME" --worker=all "${where[@]}" --command "$upload"
  run gcloud storage cp -r "${OUT_BUCKET%/}/$RUN_NAME/*" "$LOCAL_DIR/"
else
  if [[ -z "$NUM_WORKERS" ]]; then
    # One network endpoint per host; gcloud joins the list with ';'.
    endpoints="$(gcloud compute tpus tpu-vm describe "$TPU_NAME" "${where[@]}" \
      --format='value(networkEndpoints[].ipAddress)')"
    NUM_WORKERS="$(tr ';' '\n' <<< "$endpoints" | grep -c .)"
  fi
  for ((w = 0; w < NUM_WORKERS; w++)); do
    run mkdir -p "$LOCAL_DIR/worker-$w"
    run gcloud compute tpus tpu-vm scp --recurse "$TPU_NAME:$remote_out/*" \
      "$LOCAL_DIR/worker-$w/" --worker="$w" "${where[@]}"
  done
fi

if [[ -z "$MERGE_CMD" ]]; then exit 0; fi
read -r -a merge <<< "$MERGE_CMD"
if [[ "$DRY_RUN" != 1 ]] && ! command -v "${merge[0]}" >/dev/null; then
  echo "fetch_results.sh: ${merge[0]} not found here; merge later with: $MERGE_CMD $LOCAL_DIR"
  exit 0
fi
run "${merge[@]}" "$LOCAL_DIR"
