# kpibot: `kpibot serve` answers Slack on :3000 and runs the reminder scheduler in-process.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    KPIBOT_DATABASE_URL=sqlite:////data/kpibot.db \
    KPIBOT_CONTRACTS_DIR=/app/config/contracts \
    KPIBOT_ACCESS_FILE=/app/config/access.yaml \
    KPIBOT_HOST=0.0.0.0 \
    KPIBOT_PORT=3000

WORKDIR /app
COPY pyproject.toml README.md ./
COPY kpibot ./kpibot
RUN pip install --no-cache-dir .
COPY config ./config

RUN useradd --create-home --uid 10001 kpibot && mkdir -p /data && chown kpibot /data
USER kpibot
VOLUME ["/data"]
EXPOSE 3000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('KPIBOT_PORT', '3000')}/healthz\", timeout=4)" || exit 1

ENTRYPOINT ["kpibot", "serve"]
