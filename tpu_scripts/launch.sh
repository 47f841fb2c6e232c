#!/usr/bin/env bash
# Start a jaxsteer survey on every worker at once. On a pod slice each host runs the same
# command; `jaxsteer survey` calls jax.distributed.initialize() itself, takes its share of the
# prompts by process index, and writes its own records under OUT_DIR on its own disk.
#
#   PROMPTS=prompts/concepts.txt MODEL=sdxl-dmd2 PAIRS=4096 tpu_scripts/launch.sh
set -euo pipefail

PROJECT="${PROJECT:-}"                      # GCP project id (default: gcloud's current one)
ZONE="${ZONE:-us-west4-a}"
TPU_NAME="${TPU_NAME:-jaxsteer}"
REMOTE_DIR="${REMOTE_DIR:-jaxsteer}"        # install folder from setup.sh (workers' home)
PROMPTS="${PROMPTS:-prompts.txt}"           # prompt file, relative to REMOTE_DIR, one a line
MODEL="${MODEL:-shapes}"                    # model id or preset given to --model
PAIRS="${PAIRS:-1024}"                      # gradient pairs per prompt
CONFIG="${CONFIG:-}"                        # optional YAML run config (relative to REMOTE_DIR)
RUN_NAME="${RUN_NAME:-survey}"              # results go to REMOTE_DIR/results/RUN_NAME
EXTRA_ARGS="${EXTRA_ARGS:-}"                # more flags for `jaxsteer survey`, space-separated
DETACH="${DETACH:-1}"                       # 1 = run under nohup (survives ssh drops)
DRY_RUN="${DRY_RUN:-0}"                     # 1 = print the commands, run nothing

run() {  # runs a command, or prints it (shell-quoted) when DRY_RUN=1
  if [[ "$DRY_RUN" == 1 ]]; then printf '+'; printf ' %q' "$@"; printf '\n'; else "$@"; fi
}

if [[ -z "$PROJECT" && "$DRY_RUN" != 1 ]]; then
  PROJECT="$(gcloud config get-value project 2>/dev/null || true)"
fi
if [[ -z "$PROJECT" ]]; then echo "launch.sh: set PROJECT" >&2; exit 2; fi

if [[ ! "$RUN_NAME" =~ ^[A-Za-z0-9._-]+$ ]]; then
  echo "launch.sh: RUN_NAME may hold only letters, digits, '.', '_' and '-'" >&2; exit 2
fi
out_dir="results/$RUN_NAME"
args=(survey "$PROMPTS" --model "$MODEL" --pairs "$PAIRS" --out "$out_dir")
if [[ -n "$CONFIG" ]]; then args+=(--config "$CONFIG"); fi
if [[ -n "$EXTRA_ARGS" ]]; then
  read -r -a extra <<< "$EXTRA_ARGS"
  args+=("${extra[@]}")
fi
survey="$(printf ' %q' .venv/bin/jaxsteer "${args[@]}")"
# Expanded on each worker (one log per host); out_dir needs no quoting (checked above).
log="$out_dir/survey-\$(hostname).log"

remote="set -euo pipefail; cd $(printf '%q' "$REMOTE_DIR"); mkdir -p $out_dir"
if [[ "$DETACH" == 1 ]]; then
  remote+="; nohup$survey > $log 2>&1 < /dev/null & echo \"\$(hostname): started, log $log\""
else
  remote+=";$survey 2>&1 | tee $log"
fi

run gcloud compute tpus tpu-vm ssh "$TPU_NAME" --worker=all --project "$PROJECT" \
  --zone "$ZONE" --command "bash -c $(printf '%q' "$remote")"
