# kpibot: `kpibot serve` answers Slack and Teams on :3000 and runs the reminder scheduler in-process.
# Pin the base by digest in your registry mirror (docker pull python:3.11-slim, then
# FROM python:3.11-slim@sha256:<digest>) for byte-for-byte rebuilds.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KPIBOT_DATABASE_URL=sqlite:////data/kpibot.db \
    KPIBOT_CONFIG_DIR=/app/config \
    KPIBOT_HOST=0.0.0.0 \
    KPIBOT_PORT=3000

WORKDIR /app

# Dependencies first, in their own layer, exactly as tested (requirements.lock): a change to
# kpibot's code reuses this layer instead of reinstalling every dependency.
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

# Then kpibot itself, without touching the dependencies. kpibot/data links to config/ and
# teams/, so they come along; the installed package carries the files themselves.
COPY pyproject.toml README.md MANIFEST.in ./
COPY config ./config
COPY teams ./teams
COPY kpibot ./kpibot
RUN pip install --no-cache-dir --no-deps . \
    && python -c "import kpibot.core.settings as s; assert (s.DATA_DIR / 'access.yaml').is_file()"

RUN useradd --create-home --uid 10001 kpibot && mkdir -p /data && chown kpibot /data
USER kpibot
VOLUME ["/data"]
EXPOSE 3000

# Liveness; point the orchestrator's readiness probe at /readyz (503 until the database answers,
# the chat platforms are reached and the warm-up is done). SIGTERM stops it cleanly (exit 0).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('KPIBOT_PORT', '3000')}/healthz\", timeout=4)" || exit 1
STOPSIGNAL SIGTERM

ENTRYPOINT ["kpibot", "serve"]
