# vitserve: serves the variants in artifacts/ (build them first, or mount them).
#   podman build -t vitserve .            (or docker build)
#   podman run --rm -p 8000:8000 -v "$PWD/artifacts:/app/artifacts:ro" vitserve
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    USE_TF=0 \
    VITSERVE_HOST=0.0.0.0 \
    VITSERVE_PORT=8000 \
    VITSERVE_ARTIFACTS_DIR=/app/artifacts

WORKDIR /app
# torch first, from the CPU wheel index, so the pinned torch==2.13.0 is not resolved to a CUDA build.
RUN pip install --extra-index-url "$TORCH_INDEX" torch==2.13.0
COPY pyproject.toml README.md ./
COPY build_models build_models
COPY service service
COPY loadtests loadtests
RUN pip install .

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live')"
CMD ["python", "-m", "service"]
