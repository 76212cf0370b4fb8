#!/usr/bin/env bash
# Creates ./.venv with erl-losses and every extra (data, basicsr, fidelity, dev) installed.
# Idempotent: re-running reuses the venv and only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip setuptools wheel
# torch first: basicsr's sdist imports torch while building, and in pip's build isolation it
# would download a second full torch (see shared facts); so basicsr is built without isolation.
python -m pip install -q torch torchvision
python -m pip install -q --no-build-isolation "basicsr==1.4.2"
python -m pip install -q -e ".[all]"
python -c "import erl_losses, torch; print(f'erl-losses {erl_losses.__version__}, torch {torch.__version__}')"
