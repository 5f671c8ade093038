#!/usr/bin/env bash
# Serve a Triton model repository with the tritonserver bundled in nvidia-pytriton.
#
#   bash export/triton/serve.sh --setup          # only build the serving venv
#   bash export/triton/serve.sh REPO [ARGS...]   # build it if missing, then serve REPO
#
# REPO comes from `python -m export RUN --out DIR --triton REPO --triton-backend python`
# (the bundled server has the python backend only; NVIDIA's container serves the
# default onnxruntime flavour). The server binds 127.0.0.1; set TRITON_HTTP_PORT,
# TRITON_GRPC_PORT, TRITON_HOST or append tritonserver flags to change that.
# The server replaces this shell (exec), so the PID of this script is the server's.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${MMIM_TRITON_VENV:-$root/.venv-triton}"

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import pytriton, onnxruntime" 2>/dev/null; then
  # A separate venv: the python backend needs numpy < 2, the main one numpy 2.
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$root/export/triton/requirements.txt"
fi
[ "${1:-}" = "--setup" ] && exit 0
if [ $# -lt 1 ] || [ ! -d "$1" ]; then
  echo "usage: bash export/triton/serve.sh REPO [tritonserver flags...]  (REPO: a Triton model repository folder)" >&2
  exit 2
fi
repo="$(cd "$1" && pwd)"; shift

site="$("$venv/bin/python" -c 'import pytriton, os; print(os.path.dirname(os.path.dirname(pytriton.__file__)))')"
bundle="$site/pytriton/tritonserver"
pyver="$("$venv/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
# The python backend looks for its stub next to itself; the wheel keeps one stub per Python version apart.
stub="$bundle/backends/python/triton_python_backend_stub"
[ -x "$stub" ] || cp "$bundle/python_backend_stubs/$pyver/triton_python_backend_stub" "$stub"
# The stub embeds libpython: it must find this interpreter's, not the system's, plus the wheel's own libraries.
libdir="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')"
export LD_LIBRARY_PATH="$libdir:$site/nvidia_pytriton.libs:${LD_LIBRARY_PATH:-}"
# The stub runs model.py with this venv's packages (numpy < 2, onnxruntime).
export PATH="$venv/bin:$PATH"
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
host="${TRITON_HOST:-127.0.0.1}"
exec "$bundle/bin/tritonserver" \
  --model-repository="$repo" \
  --backend-directory="$bundle/backends" \
  --http-address="$host" --http-port="${TRITON_HTTP_PORT:-8000}" \
  --grpc-address="$host" --grpc-port="${TRITON_GRPC_PORT:-8001}" \
  --allow-metrics=false \
  --log-verbose=0 \
  "$@"
