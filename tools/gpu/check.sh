#!/usr/bin/env bash
# The engine on an NVIDIA GPU, against PyTorch + PEFT on the same GPU: the fixed-shape bench
# (`bench_engine --device cuda`). CI never runs this (CI has no GPU).
#
#   tools/gpu/check.sh build   here: builds bench_engine with the `cuda` feature against CUDA 13
#                              (nvcc, NVVM and the libraries from NVIDIA's PyPI wheels, no
#                              system toolkit needed), strips it into .gpu/, and downloads the
#                              reference's Python wheels (beside torch) into .gpu/whl.
#   tools/gpu/check.sh run     on the GPU machine, from the repository root, with .gpu/ carried:
#                              prints the GPU, runs the bench on it (arkor, then PyTorch + PEFT),
#                              and copies the output to $OUT/gpu-bench.txt when OUT is set.
#
# The GPU machine needs the NVIDIA driver, a python3 with torch (CUDA 13 build) and no network:
# the binary links libcublas.so.13, libcublasLt.so.13, libcurand.so.10 and libnvrtc.so.13,
# found in the CUDA toolkit there or in torch's NVIDIA wheels. Compute capability: the PTX is
# built for CUDA_COMPUTE_CAP (default 90, Hopper).
set -euo pipefail
cd "$(dirname "$0")/../.."

cuda_version=13.2.86
steps="${GPU_CHECK_STEPS:-10}"

build() {
  local cache="${ARKOR_GPU_CACHE:-$HOME/.cache/arkor-gpu}"
  local root="$cache/cuda-$cuda_version/nvidia/cu13"
  if [ ! -x "$root/bin/nvcc" ]; then
    local wheels="$cache/wheels-$cuda_version"
    mkdir -p "$wheels"
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$wheels" \
      "nvidia-cuda-nvcc==$cuda_version" "nvidia-nvvm==$cuda_version" "nvidia-cuda-crt==$cuda_version" \
      "nvidia-cuda-runtime==$cuda_version" "nvidia-cuda-nvrtc==$cuda_version" \
      "nvidia-cublas==13.4.1.3" "nvidia-curand==10.4.5.25" "nvidia-cuda-cccl==13.3.5.0.6"
    for w in "$wheels"/*.whl; do python3 -m zipfile -e "$w" "$cache/cuda-$cuda_version"; done
    chmod +x "$root"/bin/* "$root"/nvvm/bin/*
    # The unversioned names the linker looks for.
    for l in cublas cublasLt nvrtc cudart; do ln -sf "lib$l.so.13" "$root/lib/lib$l.so"; done
    ln -sf libcurand.so.10 "$root/lib/libcurand.so"
    [ -e "$root/lib64" ] || ln -s lib "$root/lib64"
  fi
  # libcuda.so (the driver) to link against: the system's, or the toolkit's stub.
  local stubs=""
  if ! ldconfig -p | grep -q 'libcuda\.so '; then
    stubs="$(find "$root" -name 'libcuda.so' -path '*stubs*' -printf '%h' -quit)"
    [ -n "$stubs" ] || { echo "error: no libcuda.so to link against (install the driver's libcuda1 or a toolkit with stubs)" >&2; exit 1; }
  fi
  PATH="$root/bin:$PATH" CUDA_ROOT="$root" CUDA_PATH="$root" CUDA_HOME="$root" \
    CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}" CARGO_TARGET_DIR="${GPU_TARGET_DIR:-target/gpu}" \
    RUSTFLAGS="${RUSTFLAGS:-}${stubs:+ -L $stubs}" \
    cargo build --release --locked -p arkor-engine --features cuda --example bench_engine
  # The wheels for the GPU machine's python3 (3.12 on the device tool's image).
  local py="${GPU_PYTHON_VERSION:-3.12}"
  rm -rf .gpu/whl && mkdir -p .gpu/whl
  # Stripped and compressed: about 58 MiB (candle's PTX kernels) becomes about 7, inside what
  # the device tool carries (64 MiB with the checkout and the wheels).
  strip -o .gpu/bench_engine "${GPU_TARGET_DIR:-target/gpu}/release/examples/bench_engine"
  xz -9 -T2 -f .gpu/bench_engine
  grep -v '^#' tools/gpu/reference-wheels.txt | xargs python3 -m pip download --quiet --no-deps \
    --only-binary=:all: --python-version "$py" --implementation cp --abi "cp${py/./}" \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .gpu/whl
  du -sh .gpu/bench_engine.xz .gpu/whl
  echo "ready: carry .gpu to the GPU machine and run tools/gpu/check.sh run there"
}

run() {
  [ -f .gpu/bench_engine.xz ] || { echo "error: .gpu/bench_engine.xz is missing; run tools/gpu/check.sh build first and carry .gpu" >&2; exit 1; }
  local bench=/tmp/arkor-gpu-bench_engine
  python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
    .gpu/bench_engine.xz "$bench"
  chmod +x "$bench"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  # The CUDA libraries: the toolkit's, and those of torch's NVIDIA wheels.
  local libs
  libs="$(python3 - <<'EOF'
import glob, os, site
dirs = set()
for base in site.getsitepackages() + [site.getusersitepackages()]:
    for pattern in ("nvidia/*/lib", "nvidia/cu*/lib"):
        dirs.update(glob.glob(os.path.join(base, pattern)))
print(":".join(sorted(dirs)))
EOF
)"
  export LD_LIBRARY_PATH="${libs}:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
  local site=/tmp/arkor-gpu-site
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .gpu/whl/*.whl \
    || { echo "error: the wheels in .gpu/whl do not install on this python3 ($(python3 -V)); rebuild them with GPU_PYTHON_VERSION set to its version" >&2; exit 1; }
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
  local log="${OUT:-/tmp}/gpu-bench.txt"
  "$bench" --device cuda --steps "$steps" --decode 128 --python python3 2>&1 | tee "$log"
}

case "${1:-}" in
  build) build ;;
  run) run ;;
  *) echo "usage: tools/gpu/check.sh build|run" >&2; exit 2 ;;
esac
