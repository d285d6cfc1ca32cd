# pixelgate: the OpenAI-compatible image gateway, as a slim non-root container.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY normalization ./normalization
COPY providers ./providers
COPY core ./core
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN groupadd --system --gid 10001 pixelgate \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home pixelgate \
    && mkdir -p /data && chown 10001:10001 /data
COPY --from=build /install /usr/local
ENV PYTHONUNBUFFERED=1 \
    PIXELGATE_DATA_DIR=/data
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]
CMD ["pixelgate", "serve", "--host", "0.0.0.0", "--port", "8080"]
