# syntax=docker/dockerfile:1
# leadscore worker image: `docker build -t leadscore .` (see deploy/README.md).
#
# Two stages. `build` installs the project exactly as `make venv` does (the Makefile's $(STAMP)
# recipe: pyproject.toml + constraints.txt, dev extra included because mypyc comes with mypy),
# and the runtime environment, the same pins without the dev extra, into /opt/leadscore; then it
# compiles the scoring core (tools/build_core.py), strictly: a failed compile fails the image
# instead of shipping the pure-Python core. `runtime` copies that environment, the
# sources with the compiled core beside them, the Avro schemas and the plans, and runs as a
# non-root user. tests/deploy/test_compose.py keeps these steps equal to the Makefile's.
#
# The image's Python must be the one the core was compiled for: both stages use PYTHON_IMAGE.
ARG PYTHON_IMAGE=python:3.11-slim-trixie

FROM ${PYTHON_IMAGE} AS build
# A C compiler for mypyc, and Python's C headers where the base lacks them: the official python
# images have them; a base made from Debian packages (deploy/containers/base.sh) keeps them out
# of the runtime image, and the build stage takes Debian's package for its Python.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && { python -c "import os, sysconfig; assert os.path.exists(sysconfig.get_path('include') + '/Python.h')" \
         || apt-get install -y --no-install-recommends "libpython$(python -c 'import sysconfig; print(sysconfig.get_python_version())')-dev"; } \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV PIP_NO_CACHE_DIR=1
# Both environments are installed before the sources come in, so that a change to the sources
# reuses them (a rebuild then compiles the core only): pip reads the project from pyproject.toml
# with stand-ins for the rest (an empty streams package, an empty README.md), and both editable
# installs point at /app/streams, where the real sources are copied next.
COPY pyproject.toml constraints.txt ./
# The build environment: make's $(STAMP) recipe, line for line.
RUN mkdir streams && touch streams/__init__.py README.md \
    && python -m venv .venv \
    && .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade "pip>=24" \
    && .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
# The runtime environment: the same pins, without the dev extra (no mypy, pytest, ruff); pip and
# setuptools leave it once it is installed (nothing runs them in the image: 20 MB).
RUN python -m venv /opt/leadscore \
    && /opt/leadscore/bin/python -m pip install -q --disable-pip-version-check --upgrade "pip>=24" \
    && /opt/leadscore/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e . \
    && /opt/leadscore/bin/python -m pip uninstall -q -y setuptools pip \
    && rm -r streams README.md
COPY streams/ streams/
COPY tools/ tools/
# The compiled core, as `make venv` builds it (strict: no silent fallback to pure Python).
RUN LEADSCORE_CORE_BUILD_STRICT=1 .venv/bin/python tools/build_core.py \
    && LEADSCORE_CORE=compiled .venv/bin/leadscore --version \
    && LEADSCORE_CORE=compiled /opt/leadscore/bin/leadscore --version

FROM ${PYTHON_IMAGE} AS runtime
# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can check it without a passwd lookup.
RUN groupadd --system --gid 10001 leadscore \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin leadscore \
    && mkdir -p /var/lib/leadscore \
    && chown 10001:10001 /var/lib/leadscore
WORKDIR /app
COPY --from=build /opt/leadscore /opt/leadscore
# The editable install points here; the compiled core and its stamp sit beside the sources.
COPY --from=build /app/streams /app/streams
COPY schemas/ /app/schemas/
COPY plans/ /app/plans/
ENV PATH=/opt/leadscore/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LEADSCORE_CORE=compiled \
    LEADSCORE_WEB_HOST=0.0.0.0 \
    LEADSCORE_WEB_PORT=6066 \
    LEADSCORE_DATA_DIR=/var/lib/leadscore \
    LEADSCORE_PLAN_PATH=/app/plans/reference.yaml
# LEADSCORE_CORE=compiled: the worker refuses to start on the pure-Python core (a broken image)
# instead of running at half speed. RocksDB stores, the lock and the instance id live in LEADSCORE_DATA_DIR: mount a volume there,
# one per worker (compose: a named volume; Kubernetes: a volumeClaimTemplate).
USER 10001:10001
EXPOSE 6066
# /healthz answers 200 while the process serves HTTP (from before init_transactions on). The
# image has no curl: the venv's Python asks. 127.0.0.1 works because LEADSCORE_WEB_HOST is 0.0.0.0.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('LEADSCORE_WEB_PORT', '6066') + '/healthz', timeout=4)"]
# SIGTERM: the worker finishes its loop turn, commits and leaves the group (exit 0).
STOPSIGNAL SIGTERM
ENTRYPOINT ["leadscore"]
CMD ["worker"]
