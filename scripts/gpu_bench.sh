#!/usr/bin/env bash
# GPU benchmark of issue 4: rnnlm (PyTensor -> JAX linker) against PyTorch cuDNN, one process per
# configuration, at the same matmul precision (TF32: JAX's default for float32 on such GPUs; the
# bench sets torch.backends.cuda.matmul.allow_tf32 = True), parameters resident on the device.
#
#   scripts/gpu_bench.sh              # B=64/H=256 and B=256/H=512, cells rnn, gru, lstm, on the GPU
#
# On a bare machine with JAX (CUDA) and PyTorch but without PyTensor, put the wheels of
# pytensor==3.0.7 cons etuples logical-unification miniKanren (cp312, manylinux) in .whl/: when
# pytensor does not import, they are installed into /tmp/site first.  Results: $OUT (default runs/gpu_bench) gets one JSON per
# configuration and the text reports (gpu_bench.txt).
# Overrides for a dry run on a CPU: DEVICE=cpu CONFIGS="4:8" VOCAB=50 CELLS=rnn REPEAT=2.
set -uo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
OUT=${OUT:-runs/gpu_bench}
DEVICE=${DEVICE:-gpu}
CONFIGS=${CONFIGS:-"64:256 256:512"}   # batch:hidden
VOCAB=${VOCAB:-8000}
STEPS=${STEPS:-32}
CELLS=${CELLS:-rnn,gru,lstm}
REPEAT=${REPEAT:-20}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

if ! "$PY" -c "import pytensor" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "gpu_bench: installing .whl/ failed" >&2; exit 1; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
# each engine version its own compile dir, off the (read-only or shared) home
export PYTENSOR_FLAGS=${PYTENSOR_FLAGS:-base_compiledir=/tmp/pytensor-gpu-bench}

echo "== preflight"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$PY" - "$DEVICE" <<'PYEOF' || { echo "gpu_bench: preflight failed" >&2; exit 1; }
import sys
import numpy, jax
from rnnlm import engine
print("python", sys.version.split()[0], "numpy", numpy.__version__, "jax", jax.__version__,
      engine.name, engine.version)
print("device:", engine.select_device(sys.argv[1]), jax.devices())
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
except ImportError:
    print("torch: not installed")
PYEOF

status=0
for cfg in $CONFIGS; do
    B=${cfg%%:*}; H=${cfg##*:}
    name="train_b${B}_h${H}"
    echo "== rnnlm bench train --device $DEVICE --batch-size $B --hidden $H"
    if "$PY" -m rnnlm bench train --device "$DEVICE" --cells "$CELLS" --batch-size "$B" --hidden "$H" \
            --vocab-size "$VOCAB" --steps "$STEPS" --repeat "$REPEAT" --json > "$OUT/$name.json"; then
        "$PY" -c "import json, sys; from rnnlm.bench import print_report; print_report(json.load(open(sys.argv[1])))" \
            "$OUT/$name.json" | tee -a "$OUT/gpu_bench.txt"
    else
        echo "gpu_bench: $name failed" | tee -a "$OUT/gpu_bench.txt"; status=1
    fi
done
exit $status
