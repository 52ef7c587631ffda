# Centralino application server: FastAGI 4573, AudioSocket 9092, HTTP 8080.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The project and its pinned dependencies (pyproject.toml); .dockerignore keeps the context small.
COPY pyproject.toml README.md ./
COPY centralino/ centralino/
COPY queueing_models/ queueing_models/
COPY acd/ acd/
COPY context/ context/
COPY ivr/ ivr/
COPY contact/ contact/
COPY agi_scripts/ agi_scripts/
RUN pip install . \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin centralino

# Default settings; docker-compose.yml mounts the same file and overrides keys by environment.
COPY centralino.example.toml /etc/centralino/centralino.toml
ENV CENTRALINO_CONFIG=/etc/centralino/centralino.toml

USER centralino

EXPOSE 4573 9092 8080

HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=3)"]

# SIGTERM from `docker stop` starts the graceful shutdown (calls go back to the dialplan).
STOPSIGNAL SIGTERM
CMD ["centralino", "serve"]
