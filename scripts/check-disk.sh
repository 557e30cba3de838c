#!/usr/bin/env bash
# Refuse to start an install that cannot fit: torch's CUDA build takes ~5.8 GiB in the venv.
# Usage: check-disk.sh DIR GIB  (DIR need not exist yet: its nearest existing parent's disk is checked)
set -euo pipefail
export LC_ALL=C
dir=$1 need_gib=$2
probe=$dir
while [ ! -e "$probe" ]; do probe=$(dirname "$probe"); done
free_gib=$(df -Pk "$probe" | awk 'NR == 2 { printf "%.1f", $4 / 1048576 }')
if awk -v free="$free_gib" -v need="$need_gib" 'BEGIN { exit !(free < need) }'; then
  echo "error: installing into $dir needs about $need_gib GiB free on its disk, and $free_gib GiB are free;" \
    "free some space (old clones, venvs, /tmp) or set VENV=/a/disk/with/room" >&2
  exit 1
fi
