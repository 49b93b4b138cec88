#!/bin/sh
# One GPU round on a fresh device machine (see docs/training.md): install what its image
# lacks into /tmp/c2f-site, the wheels from runs/wheels and this checkout's c2f-format
# (built there with the image's setuptools: a wheel of it would carry the weights a second
# time, past the 64 MiB that travel), then run lab/gpu_round.py from outside the
# checkout, so that it imports the installed package. Extra arguments pass on.
cd "$(dirname "$0")/../.." || exit 1
repo=$PWD
site=/tmp/c2f-site
pip="python3 -m pip install -q --no-index --no-deps --no-compile --find-links runs/wheels --target $site"
$pip constriction || echo "constriction did not install: the checks and the codec will fail"
$pip compressai pytorch-msssim || echo "CompressAI did not install: no GPU peer timings"
$pip --no-build-isolation --upgrade . || { echo "c2f-format did not install from $repo" >&2; exit 1; }
out=${OUT:-runs/gpu-round}
case $out in /*) ;; *) out=$repo/$out ;; esac
export PYTHONPATH="$site" PYTHONUNBUFFERED=1
cd "$site" || exit 1
exec python3 "$repo/lab/gpu_round.py" --repo "$repo" --out "$out" "$@"
