# earshot serve: REST API + web page + monitoring store. Two images from one file:
#
#   score (the default, last stage): scoring on onnxruntime, no torch (a few hundred MB smaller)
#   train: the same plus the torch 2.13.0 CPU wheel, for POST /machines/{m}/train
#
#   docker build -t earshot .                      # or: podman build -t earshot .
#   docker build --target train -t earshot:train .
#   docker run -p 8000:8000 -v earshot-data:/data -v "$PWD/model:/models:ro" \
#       -e EARSHOT_MODELS=/models -e EARSHOT_API_KEY=change-me earshot
#
# compose.yaml runs it with PostgreSQL. Not built where it was written: see README,
# "Deployment" (podman builds there, but cannot run a container nor pull a base image).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EARSHOT_DATA=/data
WORKDIR /app
RUN useradd --system --uid 10001 --home /data earshot && mkdir -p /data /models && chown earshot /data

# earshot as a wheel (no build tools in the final images).
FROM base AS wheel
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-deps -w /wheels .

FROM base AS train
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY --from=wheel /wheels /wheels
RUN pip install "$(echo /wheels/earshot-*.whl)[serve,postgres,train]" && rm -rf /wheels
USER earshot
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health').status != 200)"
# One process: the job worker and the model hot-swap live in it (see docs, "Serving").
CMD ["earshot", "serve", "--host", "0.0.0.0", "--port", "8000"]

FROM base AS score
COPY --from=wheel /wheels /wheels
RUN pip install "$(echo /wheels/earshot-*.whl)[serve,postgres]" && rm -rf /wheels
USER earshot
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health').status != 200)"
CMD ["earshot", "serve", "--host", "0.0.0.0", "--port", "8000"]
