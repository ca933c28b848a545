# models-service: one image for the api, the worker and the one-shot jobs (migrate, dev-key).
#
#   docker build -t models-service .
#   docker run models-service            # api (default): hypercorn on 0.0.0.0:8000
#   docker run models-service worker     # arq worker, Prometheus metrics on 127.0.0.1:9101
#   docker run models-service dev-key    # development signing key + public JWKS (compose)
#   docker run models-service migrate    # apply SQL migrations, then exit 0
#
# Both stages use the same base image (keep the two FROM lines in step) so that the venv built
# in the first one, whose interpreter is a symlink to /usr/local/bin/python3.11, works unchanged
# in the second. The tag is written out, not hidden behind an ARG, so linters and update bots
# can see and check it.

# --- builder: resolve the hash-locked runtime dependencies into /opt/venv ------------------
FROM python:3.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

# Every locked dependency ships a binary wheel, so no compiler is installed here either; if
# one ever has to build from source, add build-essential to this stage only.
RUN python -m venv /opt/venv
COPY requirements.lock /tmp/requirements.lock
# --require-hashes: every artefact must match the lock, and nothing unlocked can sneak in.
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes -r /tmp/requirements.lock

# --- runtime ------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS runtime

# Pass --build-arg VERSION=... and e.g. --label org.opencontainers.image.revision=$(git rev-parse HEAD)
# from the release pipeline; the defaults keep a plain `docker build` working.
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="models-service" \
      org.opencontainers.image.description="Manage, train and serve scikit-learn models over REST (api, worker and migrate in one image)." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim-bookworm"

# SERVICE__* variables override config.toml: the api must listen on all interfaces inside the
# container (the file's default is loopback) and the metrics port must match EXPOSE below.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:${PATH} \
    SERVICE__HTTP__BIND=0.0.0.0:8000 \
    SERVICE__WORKER__METRICS_PORT=9101

# Unprivileged runtime user. USER is numeric so that orchestrators can verify runAsNonRoot;
# the passwd entry exists anyway because some libraries (getpass.getuser(), used e.g. by
# asyncpg when a DSN names no user) fail for a uid without one. -l: no huge lastlog file.
# The two folders are mount points for compose's development-key volumes: a new named volume
# takes the owner and mode of the folder it is mounted on, so the unprivileged user can write
# the key there (0700: the private key's folder is for that user alone).
RUN groupadd --system --gid 10001 app \
 && useradd --system --no-log-init --uid 10001 --gid 10001 \
        --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin app \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/models/dev-signing-key \
 && install -d -o 10001 -g 10001 -m 0755 /var/lib/models/dev-jwks

# The venv only: no pip cache, no compilers, no build files from the builder stage.
COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# Application files stay owned by root, so the unprivileged process cannot modify its code.
# service/repositories/migrator.py finds the SQL files at /app/migrations; settings are read
# from ./config.toml (i.e. /app/config.toml) and overridden by SERVICE__<SECTION>__<KEY>.
COPY config.toml ./
COPY migrations/ ./migrations/
COPY service/ ./service/

USER 10001:10001

# 8000: api (SERVICE__HTTP__BIND); 9101: worker Prometheus metrics (SERVICE__WORKER__METRICS_PORT),
# bound to loopback unless SERVICE__WORKER__METRICS_ADDRESS says otherwise (compose sets 0.0.0.0
# for a Prometheus on its network).
EXPOSE 8000 9101

# hypercorn drains for http.graceful_timeout (10 s) and the worker waits up to
# worker.shutdown_wait_seconds (20 s) after SIGTERM: give them a stop timeout longer than that.
STOPSIGNAL SIGTERM

# Health of the default (api) command, without curl: open() raises on a refused connection,
# a timeout or any non-2xx status, so the exit status is 1 unless /readyz answers 200. The
# empty ProxyHandler keeps an inherited HTTP_PROXY from routing 127.0.0.1 through a proxy.
# Keep the port in step with SERVICE__HTTP__BIND. The worker overrides this check with
# `python -m service worker --check` and the one-shot migrate container disables it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:8000/readyz', timeout=4)"]

ENTRYPOINT ["python", "-m", "service"]
CMD ["api"]
