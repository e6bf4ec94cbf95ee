#!/bin/bash
# GPU check: the GPU runner tests and a whole compare built and measured on this machine's NVIDIA
# GPU, then `edgebench measure` of a run folder built elsewhere (optional). Needs a CUDA machine
# with edgebench installed with [full] and onnxruntime-gpu (edgebench[gpu]), from a checkout (the
# tests are read from ./tests). Writes everything to the folder given (default gpu-check/).
#   bash benchmarks/gpu_check.sh OUTDIR [COPIED_RUN_FOLDER]
set -u
out=${1:-gpu-check}
copied=${2:-}
mkdir -p "$out"
exec > >(tee "$out/gpu-check.log") 2>&1
date -u
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
uptime
python -c "import onnxruntime as o, torch; print('onnxruntime', o.__version__, o.get_available_providers(), 'torch', torch.__version__, torch.cuda.get_device_name(0))"
python -m edgebench.cli backends | cat
python -m edgebench.cli devices | tail -1
echo "== gpu tests"
python -m pytest -q -rs -p no:cacheprovider tests/test_gpu_runners.py tests/test_environment.py tests/test_tensorrt.py \
  --junitxml="$out/gpu-tests.xml"
if [ -n "$copied" ]; then
  echo "== measure a copied run folder"
  python -m edgebench.cli measure "$copied" && cp -r "$copied/on-device" "$out/"
fi
echo "== compare built and measured on this GPU"
python -m edgebench.cli compare mobilenetv3 --device "${DEVICE:-host}" --data digits --input-size 96 \
  --recipes baseline,prune50 --epochs 1 --runs-dir "$out/runs" --name gpu --timing-budget 1
date -u
