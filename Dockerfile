# vitserve: serves the variants in /app/artifacts, baked in at build time or mounted at run time.
#
#   docker build -t vitserve .                                   (serving image, artifacts mounted)
#   docker run --rm -p 8000:8000 -v "$PWD/artifacts:/app/artifacts:ro" vitserve
#   docker build -t vitserve:offline --build-arg PROFILE=offline .   (artifacts built and baked in;
#                                                                     the dataset comes from the hub)
# Here, with no Docker engine and no registry: deploy/container_test.sh (podman, a debootstrapped base).
#
# Build arguments:
#   BASE_IMAGE  a Python 3.11 image with `python3 -m venv` (default python:3.11-slim)
#   WITH_TF     1 adds TensorFlow (about 1 GB) so that tf-clustered is served too; 0 leaves it out
#               and tf-clustered is listed as degraded (every other variant serves)
#   PROFILE     a build profile (smoke, offline, ...) to build and bake into the image; empty = mount
#   DATASET     the dataset for PROFILE: a hub id, or a folder mounted into the build
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS python-venv
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv

# Dependencies before code: a code edit does not reinstall torch, OpenVINO or TensorFlow.
FROM python-venv AS deps
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG WITH_TF=0
COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import sys, tomllib; p = tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + (p['optional-dependencies']['tf'] if sys.argv[1] == '1' else [])))" \
        "$WITH_TF" > /tmp/requirements.txt \
 && pip install --extra-index-url "$TORCH_INDEX" -r /tmp/requirements.txt

# Artifacts, when PROFILE is set: built here with the build extra, which stays out of the final image.
FROM deps AS artifacts
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG PROFILE=
ARG DATASET=microsoft/cats_vs_dogs
WORKDIR /src
COPY pyproject.toml README.md ./
COPY vitcore vitcore
COPY build_models build_models
COPY service service
RUN mkdir -p /artifacts \
 && if [ -n "$PROFILE" ]; then \
        pip install --extra-index-url "$TORCH_INDEX" ".[build]" \
     && USE_TF=0 python -m build_models --profile "$PROFILE" --dataset "$DATASET" --artifacts /artifacts \
     && rm -rf /artifacts/.work; \
    fi

FROM deps AS serve
WORKDIR /app
COPY pyproject.toml README.md ./
# Serving needs the runtime core and the service only: the build (build_models/) stays out of this image.
COPY vitcore vitcore
COPY service service
RUN pip install --no-deps --no-build-isolation . \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin vitserve
COPY --from=artifacts --chown=10001:10001 /artifacts /app/artifacts
USER 10001
ENV USE_TF=0 \
    HF_HUB_OFFLINE=1 \
    HF_HOME=/tmp/huggingface \
    VITSERVE_HOST=0.0.0.0 \
    VITSERVE_PORT=8000 \
    VITSERVE_ARTIFACTS_DIR=/app/artifacts
EXPOSE 8000
# Healthy means ready: every required variant loaded. With no artifacts it stays unhealthy (and says why).
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('VITSERVE_PORT', '8000') + '/health/ready', timeout=4)"]
CMD ["python", "-m", "service"]
