# earshot serve: REST API + web page + monitoring store in one container.
#
#   docker build -t earshot .
#   docker run -p 8000:8000 -v earshot-data:/data -v "$PWD/model:/models:ro" \
#       -e EARSHOT_MODELS=/models -e EARSHOT_API_KEY=change-me earshot
#
# (Written for Docker; it could not be built where it was written - no Docker there.)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    EARSHOT_DATA=/data

WORKDIR /app
# torch only for training machines' models from their snippets (POST /machines/{m}/train);
# the CPU wheel, pinned as everywhere in earshot. Scoring runs on onnxruntime.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[serve,train,postgres]" && useradd --system --uid 10001 --home /data earshot \
    && mkdir -p /data /models && chown earshot /data

USER earshot
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health').status != 200)"
# One process: the job worker and the model hot-swap live in it (see README, "Serving").
CMD ["earshot", "serve", "--host", "0.0.0.0", "--port", "8000"]
