#!/usr/bin/env bash
# Refuse to start an install that cannot fit: torch's CUDA build takes ~5.8 GB in the venv.
# Usage: check-disk.sh DIR GIB
set -euo pipefail
dir=$1 need_gib=$2
mkdir -p "$dir"
free_gib=$(df -Pk "$dir" | awk 'NR == 2 { printf "%.1f", $4 / 1048576 }')
if awk -v free="$free_gib" -v need="$need_gib" 'BEGIN { exit !(free < need) }'; then
  echo "error: installing into $dir needs about $need_gib GB free on its disk, and $free_gib GB are free;" \
    "free some space (old clones, venvs, /tmp) or set VENV=/a/disk/with/room" >&2
  exit 1
fi
