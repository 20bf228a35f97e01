# Standby's container image: the gateway (and `standby sim`) as a non-root user.
#
#   docker build -t standby:local .
#   docker run -v /path/to/plans:/etc/standby:ro -p 127.0.0.1:8080:8080 standby:local
#
# The same image runs the simulated provider: `docker run standby:local sim --host 0.0.0.0`.
# compose.yaml runs three replicas behind a load balancer; see docs/deployment.md.

# -- build: the package and its dependencies into a virtual environment ----------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Every compiled dependency ships wheels for amd64 and arm64, so no compiler is needed.
RUN python -m venv /opt/standby
WORKDIR /src
COPY pyproject.toml README.md ./
COPY standby ./standby
# a regular (non-editable) install, without the dev extras
RUN /opt/standby/bin/pip install . \
    && /opt/standby/bin/standby --version

# -- run: the environment alone, no source tree, no build tools ------------------------
FROM python:3.11-slim

RUN groupadd --system --gid 10001 standby \
    && useradd --system --uid 10001 --gid standby --no-create-home \
        --home-dir /var/lib/standby --shell /usr/sbin/nologin standby \
    && mkdir -p /etc/standby /var/lib/standby \
    && chown standby:standby /var/lib/standby

COPY --from=build /opt/standby /opt/standby

ENV PATH=/opt/standby/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# The plan is mounted at /etc/standby/plan.yaml (read-only is fine). The gateway's own
# files (the write-ahead log, a generated callback secret) belong in /var/lib/standby:
# a volume per replica, owned by this user.
WORKDIR /var/lib/standby
# numeric, so that a runtime can tell it is not root without reading /etc/passwd
USER 10001:10001

EXPOSE 8080

# /healthz stays open without a key; slim has no curl, so Python's own urllib asks.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]

# Any other address than loopback needs server.client_keys and server.admin_token in
# the plan: without them Standby refuses to start, and says why.
ENTRYPOINT ["standby"]
CMD ["serve", "--plan", "/etc/standby/plan.yaml", "--host", "0.0.0.0", "--port", "8080"]
