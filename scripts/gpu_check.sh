#!/usr/bin/env bash
# The GPU check (scripts/gpu_check.py) on a fresh CUDA machine, from a clean checkout:
# installs the package into a scratch folder, then runs the check; the table, the JSON line
# and the log go to OUT_DIR. Arguments after OUT_DIR go to gpu_check.py.
#
#   scripts/gpu_check.sh OUT_DIR [--device cuda:1 | --quick ...]
#   scripts/gpu_check.sh --fetch-wheels      # on a machine with an index, before the lease
#
# The machine needs a python3 (or $PYTHON) with a CUDA build of torch. The few packages the
# suite needs beyond what such images hold (pettingzoo, gymnasium, omegaconf and theirs) come
# from the wheels in .whl/ that --fetch-wheels downloads beforehand, for a machine that
# reaches no index (CPython 3.12 on x86-64 Linux: PY_VERSION to change), crafter's with them;
# whatever the package itself still misses then comes from the index (never torch). The
# package is built with the machine's own setuptools (no build isolation: it needs no index).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
if [ "${1:-}" = "--fetch-wheels" ]; then
  common=(--no-deps --python-version "${PY_VERSION:-3.12}" --implementation cp
          --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d "$repo/.whl")
  "$python" -m pip download "${common[@]}" --only-binary=:all: pettingzoo gymnasium omegaconf \
    farama-notifications cloudpickle typing-extensions opensimplex ruamel.yaml
  # omegaconf's parser runtime and crafter (the optional extra, for the Crafter part) are
  # published as source only (pure Python)
  "$python" -m pip download --no-deps --no-binary=:all: -d "$repo/.whl" \
    "antlr4-python3-runtime==4.9.3" "crafter==1.8.3"
  exit 0
fi
out=${1:?usage: scripts/gpu_check.sh OUT_DIR [gpu_check.py options] | --fetch-wheels}
shift
mkdir -p "$out"
out=$(cd "$out" && pwd)
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
if [ -d "$repo/.whl" ]; then
  "$python" -m pip install -q --no-index --no-deps --no-build-isolation --target "$site" \
    "$repo"/.whl/*
fi
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
# what the package needs besides torch and is still missing comes from the index, with its
# own needs (none of them torch)
missing=$("$python" -c 'import importlib.util as u
need = {"numpy": "numpy", "pettingzoo": "pettingzoo", "gymnasium": "gymnasium", "PIL": "pillow",
        "omegaconf": "omegaconf", "tensorboard": "tensorboard", "tqdm": "tqdm"}
print(" ".join(name for module, name in need.items() if u.find_spec(module) is None))')
if [ -n "$missing" ]; then
  echo "installing from the index: $missing"
  # shellcheck disable=SC2086
  "$python" -m pip install -q --target "$site" $missing
fi
"$python" -m pip install -q --no-deps --no-build-isolation --target "$site" "$repo"
# from a folder without the sources, so the installed package is what runs
cd "$site"
"$python" -c "import marl, torch; print('marl', marl.__version__, 'torch', torch.__version__)"
PYTHONUNBUFFERED=1 "$python" "$repo/scripts/gpu_check.py" --out "$out/gpu_check.json" "$@" \
  2>&1 | tee "$out/gpu_check.log"
