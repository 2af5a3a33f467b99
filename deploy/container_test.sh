#!/usr/bin/env bash
# Builds the vitserve image with podman and checks it for real: readiness, /predict, /metrics, a V2
# inference with tritonclient, the container's /predict latency against the host's, and that a
# container without artifacts is unhealthy and says why. Prints a summary and writes it as JSON.
#
#   deploy/container_test.sh            (from the repository root, with the dev venv in .venv)
#
# Here there is no Docker engine and no registry: the base image is a Debian bookworm (Python 3.11)
# made with debootstrap and imported into podman, and pip inside the build uses this machine's
# CA bundle, index settings and wheel folder (mounted into the build). Needs: podman, runc,
# debootstrap (Debian packages), root.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=${PY:-$ROOT/.venv/bin/python}
WORK=${WORK:-$ROOT/.container}
DATASET=${DATASET:-$ROOT/../shared/datasets/cats_vs_dogs}
ARTIFACTS=${ARTIFACTS:-$WORK/smoke-artifacts}
BASE=${BASE:-localhost/debian-bookworm-python:3.11}
IMAGE=${IMAGE:-localhost/vitserve:test}
WITH_TF=${WITH_TF:-0}
NO_CACHE=${NO_CACHE:-0}  # 1: build every layer again (the cold build time)
PORT=${PORT:-18000}
HOST_PORT=${HOST_PORT:-18001}
RESULT=${RESULT:-$WORK/container-test.json}
PODMAN=(podman --runtime runc --cgroup-manager cgroupfs)
# Without systemd podman cannot schedule the HEALTHCHECK timer (it logs so at run); the script runs
# the health check itself with `podman healthcheck run`.
RUN_FLAGS=(--network host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
mkdir -p "$WORK"
now() { date +%s.%N; }
elapsed() { "$PY" -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$1" "$(now)"; }
step() { printf '\n== %s\n' "$*"; }

cleanup() {
    "${PODMAN[@]}" rm -f --ignore -t 2 vitserve-test vitserve-bare >/dev/null 2>&1 || true
    [[ -n "${HOST_PID:-}" ]] && kill "$HOST_PID" 2>/dev/null || true
}
trap cleanup EXIT
cleanup  # a container left by an interrupted run would block the names

step "base image $BASE"
if ! "${PODMAN[@]}" image exists "$BASE"; then
    t0=$(now)
    rm -rf "$WORK/rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$WORK/rootfs" \
        http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1
    tar -C "$WORK/rootfs" -c . | "${PODMAN[@]}" import --change 'CMD ["python3"]' - "$BASE" >/dev/null
    rm -rf "$WORK/rootfs"
    echo "made with debootstrap in $(elapsed "$t0") s"
fi

step "smoke artifacts in $ARTIFACTS"
if [[ ! -f "$ARTIFACTS/manifest.json" ]]; then
    t0=$(now)
    USE_TF=0 "$PY" -m build_models --profile smoke --dataset "$DATASET" --artifacts "$ARTIFACTS"
    echo "built in $(elapsed "$t0") s"
fi

step "podman build $IMAGE (WITH_TF=$WITH_TF)"
pip_conf="$WORK/pip.conf"
"$PY" - "$pip_conf" <<'EOF'
import subprocess, sys
# The host's pip settings (CA bundle, extra indexes, wheel folder), for pip inside the build.
keys = {"global.cert": "cert", "global.extra-index-url": "extra-index-url", "global.find-links": "find-links",
        "global.constraint": "constraint"}
lines = ["[global]"]
for line in subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout.splitlines():
    key, _, value = line.partition("=")
    if key in keys:
        lines.append(f"{keys[key]} = {value.strip().strip(chr(39))}")
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
EOF
mounts=(-v "$pip_conf:/etc/pip.conf:ro")
for path in /etc/ssl/certs/ca-certificates.crt /opt/wheels /opt/pypi /opt/pypi-more /etc/xdg/pip; do
    [[ -e "$path" ]] && mounts+=(-v "$path:$path:ro")
done
t0=$(now)
cache=(); [[ "$NO_CACHE" == 1 ]] && cache=(--no-cache)
"${PODMAN[@]}" build --isolation chroot --format docker --network host "${cache[@]}" "${mounts[@]}" \
    --build-arg BASE_IMAGE="$BASE" --build-arg WITH_TF="$WITH_TF" --build-arg TORCH_INDEX=https://pypi.org/simple \
    -t "$IMAGE" "$ROOT" >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; exit 1; }
build_s=$(elapsed "$t0")
size_mb=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE" | "$PY" -c "import sys; print(round(int(sys.stdin.read()) / 1e6))")
echo "built in $build_s s (no cache: $NO_CACHE); image size $size_mb MB (log: $WORK/build.log)"

step "run with the smoke artifacts mounted"
t0=$(now)
"${PODMAN[@]}" run -d --name vitserve-test "${RUN_FLAGS[@]}" -e VITSERVE_PORT="$PORT" -e VITSERVE_THREADS=2 \
    -v "$ARTIFACTS:/app/artifacts:ro" "$IMAGE" >/dev/null
"$PY" -m deploy.check_service wait --url "http://127.0.0.1:$PORT" --timeout 300
ready_s=$(elapsed "$t0")
echo "ready in $ready_s s after run"
"${PODMAN[@]}" healthcheck run vitserve-test && echo "HEALTHCHECK: healthy"

step "host service on the same artifacts, for the latency comparison"
VITSERVE_ARTIFACTS_DIR="$ARTIFACTS" VITSERVE_PORT="$HOST_PORT" VITSERVE_THREADS=2 USE_TF=0 \
    "$PY" -m service >"$WORK/host-service.log" 2>&1 &
HOST_PID=$!
"$PY" -m deploy.check_service wait --url "http://127.0.0.1:$HOST_PORT" --timeout 300

step "checks: /health/ready, /predict, /metrics, V2 with tritonclient, latency container vs host"
"$PY" -m deploy.check_service check --url "http://127.0.0.1:$PORT" --host-url "http://127.0.0.1:$HOST_PORT" \
    --dataset "$DATASET" --artifacts "$ARTIFACTS" --result "$RESULT" \
    --facts "image_size_mb=$size_mb" "build_s=$build_s" "build_without_cache=$NO_CACHE" "run_to_ready_s=$ready_s" \
    "with_tf=$WITH_TF"

step "a container with no artifacts must not look healthy"
"${PODMAN[@]}" run -d --name vitserve-bare "${RUN_FLAGS[@]}" -e VITSERVE_PORT=$((PORT + 2)) "$IMAGE" >/dev/null
"$PY" -m deploy.check_service bare --url "http://127.0.0.1:$((PORT + 2))" --timeout 120
if "${PODMAN[@]}" healthcheck run vitserve-bare >/dev/null 2>&1; then
    echo "FAIL: the container without artifacts reports healthy"; exit 1
fi
bare_log=$("${PODMAN[@]}" logs vitserve-bare 2>&1)
grep -m1 "NO ARTIFACTS" <<<"$bare_log"
echo "HEALTHCHECK without artifacts: unhealthy (as it must be)"

step "passed; summary in $RESULT"
cat "$RESULT"
