#!/usr/bin/env bash
# Install jaxsteer on every worker of a TPU VM / pod slice: code, Python venv, jax[tpu].
#
#   PROJECT=my-proj ZONE=us-west4-a tpu_scripts/setup.sh                # copy this checkout
#   REPO_URL=https://github.com/ORG/jaxsteer.git tpu_scripts/setup.sh   # or clone on workers
set -euo pipefail

PROJECT="${PROJECT:-}"                      # GCP project id (default: gcloud's current one)
ZONE="${ZONE:-us-west4-a}"
TPU_NAME="${TPU_NAME:-jaxsteer}"
REPO_URL="${REPO_URL:-}"                    # git URL to clone; empty = copy the local checkout
REPO_REF="${REPO_REF:-main}"                # branch or tag to clone (REPO_URL only)
REMOTE_DIR="${REMOTE_DIR:-jaxsteer}"        # install folder, relative to the workers' home
PYTHON="${PYTHON:-python3.11}"              # jaxsteer needs Python >= 3.11
EXTRAS="${EXTRAS:-tpu}"                     # pip extras: tpu (jax[tpu]), tpu,test, ...
DRY_RUN="${DRY_RUN:-0}"                     # 1 = print the commands, run nothing

run() {  # runs a command, or prints it (shell-quoted) when DRY_RUN=1
  if [[ "$DRY_RUN" == 1 ]]; then printf '+'; printf ' %q' "$@"; printf '\n'; else "$@"; fi
}

if [[ -z "$PROJECT" && "$DRY_RUN" != 1 ]]; then
  PROJECT="$(gcloud config get-value project 2>/dev/null || true)"
fi
if [[ -z "$PROJECT" ]]; then echo "setup.sh: set PROJECT" >&2; exit 2; fi
where=(--project "$PROJECT" --zone "$ZONE")

dir_q="$(printf '%q' "$REMOTE_DIR")"
if [[ -n "$REPO_URL" ]]; then
  fetch="rm -rf $dir_q && git clone --depth 1 --branch $(printf '%q' "$REPO_REF") \
$(printf '%q' "$REPO_URL") $dir_q"
else
  # The working tree as it is (uncommitted edits included), without git data or local venvs.
  repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  tarball="${TMPDIR:-/tmp}/jaxsteer-src.tar.gz"
  run tar -czf "$tarball" -C "$repo_root" --exclude=.git --exclude=.venv --exclude=results \
    --exclude='__pycache__' --exclude='*.egg-info' .
  run gcloud compute tpus tpu-vm scp "$tarball" "$TPU_NAME:jaxsteer-src.tar.gz" \
    --worker=all "${where[@]}"
  fetch="rm -rf $dir_q && mkdir -p $dir_q && tar -xzf jaxsteer-src.tar.gz -C $dir_q"
fi

# TPU images ship an older system Python; add the pinned one from apt when it is missing.
# One line joined by ';' (no newlines), so the quoting holds in any remote login shell.
steps=(
  "set -euo pipefail"
  "command -v $PYTHON >/dev/null || \
{ sudo apt-get update -qq && sudo apt-get install -y -qq $PYTHON $PYTHON-venv; }"
  "$fetch"
  "cd $dir_q"
  "$PYTHON -m venv .venv"
  ".venv/bin/pip install -q -U pip"
  ".venv/bin/pip install -q -e '.[$EXTRAS]' \
-f https://storage.googleapis.com/jax-releases/libtpu_releases.html"
  ".venv/bin/python -c 'import jax; print(jax.process_index(), jax.device_count())'"
)
install="$(IFS=';'; echo "${steps[*]}")"

run gcloud compute tpus tpu-vm ssh "$TPU_NAME" --worker=all "${where[@]}" \
  --command "bash -c $(printf '%q' "$install")"
