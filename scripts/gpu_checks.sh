#!/usr/bin/env bash
# The GPU checks of issue 17, in one run, on a machine with one NVIDIA GPU.
#
#   OUT=/tmp/gpu-out bash scripts/gpu_checks.sh
#
# 1. records the machine (nvidia-smi, torch / torchcodec / onnxruntime / faiss builds);
# 2. optionally installs the GPU wheels (onnxruntime-gpu, faiss-gpu-cu12, mamba-ssm); every install
#    is tolerant: one that fails (no network, no wheel) leaves the CPU package in place and is logged;
# 3. runs the CUDA tests (tests/test_gpu_path.py -k cuda: NVDEC decoding, histograms on the GPU,
#    `--device cuda` indexing equal to the CPU within tolerance, the GPU batch size, OCR's provider,
#    mamba-ssm's scan against the lean scan) and the CPU tests of the same path;
# 4. runs benchmarks/gpu_index.py and keeps its table.
# Everything lands under $OUT (default ./gpu_checks_out): checks.log, env.txt, pytest-*.txt/xml,
# bench/results.json, bench/table.md, summary.txt. The exit status is that of the CUDA tests.
#
# Settings (environment):
#   GPU_CHECKS_INSTALL=0        skip the pip installs (default 1: try them)
#   GPU_CHECKS_MAMBA=0          skip the mamba-ssm build (default 1; it compiles CUDA code when no wheel fits)
#   BENCH_MINUTES=60            benchmark video length (60 = the README's figure; 10 fits a 15-minute lease)
#   BENCH_HEIGHT=1080           benchmark video height
#   BENCH_VISUAL=ViT-B-32,ViT-L-14   visual models; BENCH_CAPTIONS=off,on
#   BENCH_ARGS=""               more arguments for gpu_index.py (e.g. --random-weights, --caption-model hf:...)
#   BENCH_TIMEOUT=3000          seconds before the benchmark is stopped (0: no benchmark)
#   PYTHON=python               the interpreter (default: .venv/bin/python when present, else python3)
set -u -o pipefail

cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_checks_out}"
mkdir -p "$OUT"
LOG="$OUT/checks.log"
: >"$LOG"
say() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
PIP=("$PYTHON" -m pip --disable-pip-version-check)

say "repo $(pwd), python $PYTHON, OUT $OUT"
{ nvidia-smi || echo "nvidia-smi: not found"; } >"$OUT/nvidia-smi.txt" 2>&1

# --- the vdisc package itself -------------------------------------------------
if ! "$PYTHON" -c "import vdisc" >/dev/null 2>&1; then
    say "vdisc is not importable: pip install -e . (needs its dependencies or an index)"
    timeout 900 "${PIP[@]}" install -e . >>"$LOG" 2>&1 || say "pip install -e . failed (see checks.log)"
fi

# --- optional GPU wheels ------------------------------------------------------
# A GPU wheel replaces a CPU one that ships the same module (onnxruntime, faiss): install the GPU one
# first, and only when that worked remove the CPU one and reinstall the GPU one's files over the gap.
swap_in() {  # swap_in <gpu wheel> <cpu wheel>
    local gpu="$1" cpu="$2"
    if timeout 600 "${PIP[@]}" install "$gpu" >>"$LOG" 2>&1; then
        if "${PIP[@]}" show "$cpu" >/dev/null 2>&1; then
            "${PIP[@]}" uninstall -y "$cpu" >>"$LOG" 2>&1
            timeout 600 "${PIP[@]}" install --force-reinstall --no-deps "$gpu" >>"$LOG" 2>&1 \
                || say "reinstalling $gpu after removing $cpu failed: $cpu is gone, reinstall it by hand"
        fi
        say "installed $gpu"
    else
        say "could not install $gpu (offline or no wheel): keeping $cpu"
    fi
}
if [ "${GPU_CHECKS_INSTALL:-1}" = "1" ]; then
    swap_in onnxruntime-gpu onnxruntime
    swap_in faiss-gpu-cu12 faiss-cpu
    if [ "${GPU_CHECKS_MAMBA:-1}" = "1" ]; then
        if timeout 1200 "${PIP[@]}" install --no-build-isolation mamba-ssm >>"$LOG" 2>&1; then
            say "installed mamba-ssm"
        else
            say "could not install mamba-ssm: its scan test will skip"
        fi
    fi
else
    say "GPU_CHECKS_INSTALL=0: no installs"
fi

"$PYTHON" - >"$OUT/env.txt" 2>&1 <<'EOF'
import importlib, platform
print("python", platform.python_version())
try:
    import torch
    print("torch", torch.__version__, "cuda build", torch.version.cuda, "cuda available", torch.cuda.is_available())
    if torch.cuda.is_available():
        print("gpu", torch.cuda.get_device_name(0), "free/total bytes", torch.cuda.mem_get_info(0))
except Exception as exc:
    print("torch: unusable:", exc)
for mod in ("torchcodec", "onnxruntime", "faiss", "mamba_ssm", "faster_whisper", "ctranslate2", "open_clip"):
    try:
        m = importlib.import_module(mod)
        print(mod, getattr(m, "__version__", "?"))
    except Exception as exc:
        print(mod, "missing:", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
try:
    import onnxruntime
    print("onnxruntime providers", onnxruntime.get_available_providers())
except Exception:
    pass
try:
    import faiss
    print("faiss GPUs", faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0)
except Exception:
    pass
try:
    import ctranslate2
    print("ctranslate2 CUDA devices", ctranslate2.get_cuda_device_count())
except Exception:
    pass
from vdisc.index import decode
print("GPU decoding:", decode.cuda_decode_unavailable() or "available (torchcodec NVDEC)")
EOF
cat "$OUT/env.txt" >>"$LOG"

# --- tests --------------------------------------------------------------------
say "CUDA tests: tests/test_gpu_path.py -k cuda"
"$PYTHON" -m pytest -q -rs -p no:cacheprovider tests/test_gpu_path.py -k cuda \
    --junitxml="$OUT/pytest-cuda.xml" >"$OUT/pytest-cuda.txt" 2>&1
CUDA_RC=$?
tail -n 15 "$OUT/pytest-cuda.txt" | tee -a "$LOG"
say "CPU tests of the same path and its neighbours"
"$PYTHON" -m pytest -q -rs -p no:cacheprovider tests/test_gpu_path.py tests/test_visual_preprocess.py \
    tests/test_gpu_filters.py tests/test_decode.py -k "not cuda" \
    --junitxml="$OUT/pytest-cpu.xml" >"$OUT/pytest-cpu.txt" 2>&1
CPU_RC=$?
tail -n 5 "$OUT/pytest-cpu.txt" | tee -a "$LOG"

# --- benchmark ----------------------------------------------------------------
BENCH_RC="skipped"
if [ "${BENCH_TIMEOUT:-3000}" != "0" ]; then
    say "benchmark: ${BENCH_MINUTES:-60} min ${BENCH_HEIGHT:-1080}p, visual ${BENCH_VISUAL:-ViT-B-32,ViT-L-14}, captions ${BENCH_CAPTIONS:-off,on}"
    # shellcheck disable=SC2086 # BENCH_ARGS is a list of arguments on purpose
    timeout "${BENCH_TIMEOUT:-3000}" "$PYTHON" benchmarks/gpu_index.py --device cuda \
        --minutes "${BENCH_MINUTES:-60}" --height "${BENCH_HEIGHT:-1080}" \
        --visual "${BENCH_VISUAL:-ViT-B-32,ViT-L-14}" --captions "${BENCH_CAPTIONS:-off,on}" \
        --work "$OUT/bench-work" --out "$OUT/bench" ${BENCH_ARGS:-} >"$OUT/bench.txt" 2>&1
    BENCH_RC=$?
    if [ "$BENCH_RC" = "3" ] && ! grep -q -- "--random-weights" <<<"${BENCH_ARGS:-}"; then  # 3: no weights
        say "pretrained weights unavailable: the benchmark again with --random-weights"
        # shellcheck disable=SC2086
        timeout "${BENCH_TIMEOUT:-3000}" "$PYTHON" benchmarks/gpu_index.py --device cuda --random-weights \
            --minutes "${BENCH_MINUTES:-60}" --height "${BENCH_HEIGHT:-1080}" \
            --visual "${BENCH_VISUAL:-ViT-B-32,ViT-L-14}" --captions "${BENCH_CAPTIONS:-off,on}" \
            --work "$OUT/bench-work" --out "$OUT/bench" ${BENCH_ARGS:-} >>"$OUT/bench.txt" 2>&1
        BENCH_RC=$?
    fi
    rm -rf "$OUT/bench-work"  # the video is large; results.json and table.md stay
    tail -n 12 "$OUT/bench.txt" | tee -a "$LOG"
fi

{
    echo "cuda tests rc=$CUDA_RC (tests/test_gpu_path.py -k cuda; skips listed in pytest-cuda.txt)"
    echo "cpu tests rc=$CPU_RC"
    echo "benchmark rc=$BENCH_RC"
    [ -f "$OUT/bench/table.md" ] && cat "$OUT/bench/table.md"
} | tee "$OUT/summary.txt" | tee -a "$LOG"
exit "$CUDA_RC"
