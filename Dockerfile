# algo-mcp: the gateway with its built-in algorithms (models ship inside their PyPI packages).
#
#   docker build -t algo-mcp .                      # CPU torch
#   docker build -t algo-mcp:cu128 \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
#
# BASE_IMAGE: any image with Python >= 3.11, pip and bash (bash: KubeRay runs `ray start` with it).
#   CUDA torch wheels bring their own CUDA libraries, so a GPU image needs only the CUDA
#   TORCH_INDEX_URL and a host with the NVIDIA driver; a CUDA base image (nvidia/cuda:…-runtime with
#   Python 3.11+) is only needed by algorithms that use CUDA outside torch.
# TORCH_INDEX_URL: where torch==2.13.0 comes from (the CPU build by default).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# Dependencies first, from pyproject.toml alone: a code change reuses this layer.
# torch from TORCH_INDEX_URL before the rest, so the requirement torch==2.13.0 is already met
# by that build (2.13.0+cpu, 2.13.0+cu128…) and PyPI's default build is never pulled in.
COPY pyproject.toml ./
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" torch==2.13.0 \
 && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# The code, then the package itself without touching the dependencies.
COPY README.md algorithms.yaml ./
COPY mcp_server ./mcp_server
COPY engines ./engines
COPY storage ./storage
RUN pip install --no-cache-dir --no-deps . \
 && groupadd --gid 10001 algo \
 && useradd --create-home --uid 10001 --gid 10001 algo \
 && mkdir /data \
 && chown algo:algo /data

# Numeric, so Kubernetes' runAsNonRoot can check it.
USER 10001:10001

# DATA_DIR: the bundled Redis's data and the local object store when REDIS_URL / S3_BUCKET are unset.
# HF_HUB_OFFLINE: the models are in the installed packages; nothing is downloaded at run time.
ENV DATA_DIR=/data \
    SERVICE_PORT=8000 \
    HF_HUB_OFFLINE=1 \
    FASTMCP_CHECK_FOR_UPDATES=off \
    RAY_USAGE_STATS_ENABLED=0
VOLUME ["/data"]
EXPOSE 8000

# Healthy only on 200 ({"status": "ok"}); 503 (starting, degraded) and no answer fail.
# The start period covers starting Ray and deploying every algorithm.
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SERVICE_PORT', '8000'), timeout=4)"]

CMD ["algo-mcp", "serve", "--transport", "http", "--host", "0.0.0.0"]
