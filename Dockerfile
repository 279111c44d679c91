# syntax=docker/dockerfile:1
#
# detector container image: two stages, the same pinned Python base in both.
#   build   : a virtualenv with detector and its dependencies; gcc compiles the ingest hot path
#             (decode + normalize) with mypyc, see setup.py
#   runtime : that virtualenv plus the rules and schemas; no compiler, no pip, no apt, non-root.
#
# The base is pinned by full version tag AND digest (python:3.11.14-slim-bookworm, multi-arch
# index). Renovate/Dependabot can bump both together; to rebuild on a newer patch, change both.

FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Every dependency ships manylinux wheels for CPython 3.11; the compiler is for detector's own
# hot path only, and stays in this stage.
RUN apt-get update \
 && apt-get install --yes --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
RUN python -m venv /opt/detector
COPY pyproject.toml setup.py README.md ./
COPY detector ./detector
# Optional extras, e.g. --build-arg DETECTOR_EXTRAS='[msk]' for Amazon MSK IAM authentication.
ARG DETECTOR_EXTRAS=""
# The extensions are optional in setup.py, so fail here rather than ship the slower build.
RUN /opt/detector/bin/pip install ".${DETECTOR_EXTRAS}" \
 && cd / && /opt/detector/bin/python -c "import detector.normalize as n; assert n.COMPILED, 'not compiled'" \
 && /opt/detector/bin/pip uninstall --yes pip setuptools wheel \
 && rm -rf /opt/detector/bin/activate* /opt/detector/bin/Activate.ps1

FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS runtime

# No package managers in the shipped image: drop the base image's pip/setuptools/wheel and the
# apt/dpkg executables. dpkg's status database stays so image scanners still list OS packages.
RUN rm -rf /usr/local/bin/pip* \
           /usr/local/lib/python3.11/site-packages/pip \
           /usr/local/lib/python3.11/site-packages/pip-* \
           /usr/local/lib/python3.11/site-packages/setuptools \
           /usr/local/lib/python3.11/site-packages/setuptools-* \
           /usr/local/lib/python3.11/site-packages/_distutils_hack \
           /usr/local/lib/python3.11/site-packages/distutils-precedence.pth \
           /usr/local/lib/python3.11/site-packages/pkg_resources \
           /usr/local/lib/python3.11/site-packages/wheel \
           /usr/local/lib/python3.11/site-packages/wheel-* \
           /usr/bin/apt /usr/bin/apt-* /usr/bin/dpkg /usr/bin/dpkg-* \
           /var/lib/apt /var/cache/apt /etc/apt \
 && groupadd --system --gid 10001 detector \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /app \
            --shell /usr/sbin/nologin detector

COPY --from=build /opt/detector /opt/detector
WORKDIR /app
COPY detections ./detections
COPY schemas ./schemas

ENV PATH=/opt/detector/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DETECTOR_HEALTH__PORT=8080

USER 10001:10001
EXPOSE 8080

# /healthz answers 503 when the pipeline stalls; the probe uses only the standard library.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('DETECTOR_HEALTH__PORT', '8080'), timeout=4)"]

ENTRYPOINT ["detector"]
CMD ["run"]
