# Sourced by the detached bench/*_gpu.sh scripts, first thing after their arguments are resolved: the
# device tool re-sends (and so replaces) the working tree with every call, so a run that outlives its
# call works from a private copy of the repository in WORK/src. Outside such a copy this copies the
# tree and re-executes the script there with ARGS; inside one it does nothing.
#
#   . "$(dirname "$0")/gpu_copy.sh" WORK "$0" ARGS...
if [ -z "${CALLTUNE_GPU_COPY:-}" ]; then
  mkdir -p "$1/src"
  tar -C "$(dirname "$2")/.." --exclude='./.*' --exclude=./models --exclude=./node_modules --exclude='*.egg-info' \
    -cf - . | tar -C "$1/src" -xf -
  CALLTUNE_GPU_COPY=1 exec bash "$1/src/bench/$(basename "$2")" "${@:3}"
fi
