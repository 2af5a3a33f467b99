#!/bin/bash
# README command 1 on a fresh clone of this checkout, timed from `python3 -m venv` to /health/ready 200.
# Usage: deploy/command1_timing.sh LABEL   -> docs/cmd1-LABEL.json (run it with nothing else on the machine)
set -u
label=${1:?label, e.g. offline}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(dirname "$repo")/cmd1-fresh
rm -rf "$work" && git clone -q "$repo" "$work" && cd "$work"
start=$(date +%s)
# The subshell execs the service as its last command, so $command is the service's own PID once it runs.
( python3 -m venv .venv && .venv/bin/pip install -q -e ".[build]" && exec .venv/bin/python -m service --build-if-missing ) \
  > "$work.log" 2>&1 &
command=$!
first=null  # the first variant served while the build runs beside the server
until curl -sf -o /dev/null http://127.0.0.1:8000/health/ready; do
  sleep 10
  if ! kill -0 "$command" 2>/dev/null; then echo "command 1 exited before it was ready; see $work.log"; exit 1; fi
  if [ "$first" = null ] && curl -sf http://127.0.0.1:8000/variants | grep -q '"state":"served"'; then
    first=$(( $(date +%s) - start ))
  fi
done
seconds=$(( $(date +%s) - start ))
kill -TERM "$command" && wait "$command"
flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_vnni|avx512_bf16|amx_bf16)$' | tr '\n' ' ')
model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)
printf '{"seconds": %d, "first_variant_served_seconds": %s, "cpu": "%s", "flags": "%s", "cores": %d, "profile": "%s"}\n' \
  "$seconds" "$first" "$model" "${flags% }" "$(nproc)" "$label" > "$repo/docs/cmd1-$label.json"
echo "ready after $seconds s ($(( seconds / 60 )) min); wrote docs/cmd1-$label.json"
