#!/usr/bin/env bash
# Creates a virtual environment with erl-losses installed (editable) and reports the versions.
#
#   bash scripts/setup.sh                      ./.venv: every extra (data, basicsr, fidelity, hub,
#                                              dev), pip basicsr 1.4.2 included
#   bash scripts/setup.sh --no-basicsr         ./.venv-vendored: the core and the data extra, and
#                                              NO pip basicsr, for repos that vendor their own
#                                              basicsr/ folder (Retinexformer, Restormer, ...)
#   bash scripts/setup.sh --venv DIR [...]     the environment in DIR instead
#
# Why two environments: a vendored basicsr/ without __init__.py (Retinexformer's) is a namespace
# package, and an installed regular `basicsr` anywhere on sys.path wins over it even with
# PYTHONPATH=. first. Such a repo needs an environment without pip basicsr; erl-basicsr-train needs
# one with it. --no-basicsr uninstalls a pip basicsr it finds in its environment.
# Idempotent: re-running reuses the environment and only installs what is missing.
set -euo pipefail
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
NO_BASICSR=0
VENV=
while [ $# -gt 0 ]; do
  case "$1" in
    --no-basicsr) NO_BASICSR=1 ;;
    --venv)
      [ $# -ge 2 ] || { echo "setup.sh: error: Expected a folder after --venv, got none" >&2; exit 2; }
      VENV=$2
      shift
      ;;
    -h | --help) usage; exit 0 ;;
    *) echo "setup.sh: error: Expected --no-basicsr, --venv DIR or --help, got '$1'" >&2; exit 2 ;;
  esac
  shift
done
case "$VENV" in "" | /*) ;; *) VENV="$PWD/$VENV" ;; esac  # --venv: relative to the caller
cd "$(dirname "$0")/.."
if [ -z "$VENV" ]; then
  if [ "$NO_BASICSR" = 1 ]; then VENV="$PWD/.venv-vendored"; else VENV="$PWD/.venv"; fi
fi
PYTHON=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip setuptools wheel
# torch first: basicsr's sdist imports torch while building, and in pip's build isolation it
# would download a second full torch (see shared facts); so basicsr is built without isolation.
python -m pip install -q torch torchvision
if [ "$NO_BASICSR" = 1 ]; then
  if python -m pip show -q basicsr >/dev/null 2>&1; then
    echo "setup.sh: removing pip basicsr from $VENV: it would shadow a repo's vendored basicsr/"
    python -m pip uninstall -q -y basicsr
  fi
  python -m pip install -q -e ".[data]"
else
  python -m pip install -q --no-build-isolation "basicsr==1.4.2"
  python -m pip install -q -e ".[all]"
fi
python -c "import erl_losses, torch; print(f'erl-losses {erl_losses.__version__}, torch {torch.__version__}')"
if [ "$NO_BASICSR" = 1 ]; then
  echo "$VENV has no pip basicsr: in a repo with a vendored basicsr/, run its train.py from the"
  echo "repo root with this environment and PYTHONPATH=. (see docs/basicsr.md, Vendored BasicSR repos)"
fi
