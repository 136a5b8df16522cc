#!/usr/bin/env bash
# The GPU check, one command, under 5 minutes: what batching across rooms gives on a CUDA
# worker, and mouth-to-ear with a CUDA worker behind two media nodes.
#
#   scripts/gpu-check.sh            # results in ${OUT:-/tmp/gpu-check}/*.md, also printed
#
# 1. preflight (seconds): the Python in use has the project's packages and CTranslate2 sees a
#    GPU; otherwise it stops and says exactly what is missing. CTranslate2's wheels (4.x) are
#    built against CUDA 12: they need libcublas.so.12 and cuDNN 9 for CUDA 12, and see no GPU
#    with CUDA 13 libraries alone (OpenNMT/CTranslate2#1933);
# 2. bench.batching on cuda, one run: one worker at batch 1, 4, 8, 16, 32 with encoder windows
#    rounded to 1 s and to 5 s, against the engine one utterance at a time and raw
#    faster-whisper (about a minute);
# 3. bench.distributed_call at 8 and 32 concurrent translated calls, both parties talking, 20 s
#    each, embedded against two media nodes and one worker (the engines on the GPU in both);
#    the aim is 32 calls at p95 <= 1.5 s mouth-to-ear (about 3 minutes).
#
# Needs Redis on 127.0.0.1:6379 (started here from redis-server if it is installed and none
# answers). PYTHON picks the interpreter (default: .venv/bin/python, else python3);
# GPU_CHECK_DEVICE=cpu runs the same steps on the CPU (a dry run of this script, not a figure).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ -n "${PYTHON:-}" ]; then
  python=$PYTHON
elif [ -x .venv/bin/python ]; then
  python=.venv/bin/python
else
  python=python3
fi
out=${OUT:-/tmp/gpu-check}
device=${GPU_CHECK_DEVICE:-cuda}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
start=$(date +%s)
log() { echo "[gpu-check $(($(date +%s) - start))s] $*"; }

# --- 1. preflight -------------------------------------------------------------------------------
log "preflight with $python"
if ! GPU_CHECK_DEVICE=$device "$python" - <<'EOF' 2>&1 | tee "$out/preflight.txt"; then
import importlib, os, sys
missing = [m for m in ("ctranslate2", "faster_whisper", "aiortc", "av", "redis", "piper", "sentencepiece")
           if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"missing Python packages: {', '.join(missing)} (carry them as wheels: docs/benchmarks.md)")
import ctranslate2
count = ctranslate2.get_cuda_device_count()
print(f"ctranslate2 {ctranslate2.__version__}, CUDA devices seen: {count}")
if count == 0 and os.environ["GPU_CHECK_DEVICE"] == "cuda":
    import ctypes
    for lib in ("libcublas.so.12", "libcudnn.so.9"):
        try:
            ctypes.CDLL(lib)
        except OSError as exc:
            print(f"cannot load {lib}: {exc}")
    sys.exit("CTranslate2 sees no GPU: its wheels need CUDA 12's cuBLAS and cuDNN 9 "
             "(nvidia-cublas-cu12, nvidia-cudnn-cu12 on LD_LIBRARY_PATH)")
EOF
  log "preflight failed: nothing measured"
  exit 2
fi

if ! "$python" -c "import redis; redis.Redis(port=6379).ping()" 2>/dev/null; then
  if command -v redis-server >/dev/null; then
    redis-server --port 6379 --save "" --appendonly no --daemonize yes >/dev/null
    log "started redis-server on :6379"
  else
    log "no Redis on 127.0.0.1:6379 and no redis-server to start"
    exit 2
  fi
fi

# --- 2. batch throughput ------------------------------------------------------------------------
log "bench.batching on $device"
# A step that fails or runs out of time is reported and the next one still runs.
timeout 120 "$python" -m bench.batching --runs 1 --batch 1 4 8 16 32 --step 1 5 --device "$device" \
  2>&1 | tee "$out/batching.md" || log "bench.batching failed or timed out (exit $?)"

# --- 3. calls -----------------------------------------------------------------------------------
log "bench.distributed_call at 8 and 32 calls"
CALLSERVER_STT_DEVICE=$device CALLSERVER_MT_DEVICE=$device CALLSERVER_WORKER_BATCH_SIZE=16 CALLSERVER_WORKER_SLOTS=2 \
  timeout 200 "$python" -m bench.distributed_call --calls 8 32 --seconds 20 \
  2>&1 | tee "$out/distributed_call.md" || log "bench.distributed_call failed or timed out (exit $?)"
log "done in $(($(date +%s) - start)) s"
