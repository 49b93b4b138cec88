#!/bin/sh
# One GPU round on a fresh device machine (see docs/training.md): install the wheels its
# image lacks from runs/wheels, then `c2f-train --gpu-round`. Extra arguments pass on.
cd "$(dirname "$0")/.." || exit 1
site=/tmp/c2f-site
pip="python3 -m pip install -q --no-index --no-deps --no-compile --find-links runs/wheels --target $site"
$pip constriction || echo "constriction did not install: the checks and the codec will fail"
$pip compressai pytorch-msssim || echo "CompressAI did not install: no GPU peer timings"
export PYTHONPATH="$site:$PWD" PYTHONUNBUFFERED=1
exec python3 -m c2f_format.train --gpu-round --out "${OUT:-runs/gpu-round}" "$@"
