#!/usr/bin/env bash
# Install Fashion-MNIST from Debian's dataset-fashion-mnist package unless it is already there.
set -euo pipefail
dir=${ZOOFIT_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
if [ -f "$dir/t10k-labels-idx1-ubyte.gz" ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "installing Fashion-MNIST (apt-get install dataset-fashion-mnist)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null
