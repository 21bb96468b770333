# syntax=docker/dockerfile:1
# The bot server, as `make run` runs it (`python bot.py serve`): the locked dependencies, the
# Silero VAD and Smart Turn v3 models (both ship inside the pipecat-ai wheel, so nothing is
# downloaded at start), a non-root user, and /data for the SQLite call records.
#
#   docker build -t voicebot .
#   docker run --env-file .env -p 8765:8765 -v voicebot-data:/data voicebot
#
# PYTHON_IMAGE: any Debian-based image with Python 3.11 (requirements.lock is for 3.11).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS dependencies
# As the Makefile installs them: a venv, uv in it, then exactly requirements.lock.
COPY requirements.lock /tmp/requirements.lock
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --quiet --no-cache-dir --disable-pip-version-check uv \
    && /opt/venv/bin/uv pip sync --quiet --no-cache --compile-bytecode \
        --python /opt/venv/bin/python /tmp/requirements.lock

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DATA_DIR=/data
# A fixed numeric uid, so that Kubernetes' runAsNonRoot can check it (deploy/kubernetes).
RUN groupadd --system --gid 10001 bot \
    && useradd --system --uid 10001 --gid bot --home-dir /app --no-create-home bot \
    && mkdir /data && chown bot:bot /data
COPY --from=dependencies /opt/venv /opt/venv
WORKDIR /app
COPY . .
# Fails the build if either model is missing: the server loads both before its first call.
RUN python -c "from models.silero_vad import shared_model; from models.smart_turn import shared_session; shared_model(); shared_session()" \
    && python -m compileall -q /app
USER 10001:10001
VOLUME /data
# PORT's default (server/settings.py); the server binds 0.0.0.0 (bot.py serve --host).
EXPOSE 8765
# /health answers 503 while draining after SIGTERM: the instance counts as unhealthy then.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py"]
CMD ["python", "bot.py", "serve"]
