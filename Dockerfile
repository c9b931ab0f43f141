# syntax=docker/dockerfile:1
#
# bouncewatch container image: `bouncewatch worker` as a non-root user.
#
#   docker build -t registry.example.com/platform/bouncewatch:0.1.0 .
#   docker push registry.example.com/platform/bouncewatch:0.1.0
#
# Two stages: `build` makes the bouncewatch wheel and a wheel for every dependency (with a
# C toolchain at hand for dependencies that have no prebuilt wheel for the platform, such as
# faust-streaming on arm64) and installs them into a virtualenv; the final stage copies only
# that virtualenv onto a slim Python base, so no compiler, pip cache or source tree ends up
# in the image. The dependencies are exactly those of requirements.lock (versions and
# hashes, written by `make lock`): a new release of a dependency changes no image until the
# lock is updated.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build

# pip byte-compiles the installed modules (the runtime's root filesystem is read-only).
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# The wheels of the locked dependencies (the runtime ones and the rocksdb extra: the chart's
# default table store is rocksdb://), every download checked against its hash. A layer of
# its own, rebuilt only when the lock changes.
COPY requirements.lock ./
RUN python -m pip wheel --require-hashes --wheel-dir /wheels -r requirements.lock

# .dockerignore keeps tests, charts, virtualenvs and caches out of the context.
COPY . .

# The package's own wheel, then a virtualenv with exactly these wheels (--no-deps: nothing
# is resolved here; `pip check` fails the build if the lock missed a dependency).
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/bouncewatch \
    && /opt/bouncewatch/bin/pip install --no-index --no-deps /wheels/*.whl \
    && /opt/bouncewatch/bin/pip check \
    && /opt/bouncewatch/bin/bouncewatch --help > /dev/null


FROM python:${PYTHON_VERSION}-slim-bookworm

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="bouncewatch" \
      org.opencontainers.image.description="Streaming alerting for email deliverability" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# uid/gid 1001 match the Helm chart's runAsUser/runAsGroup/fsGroup.
RUN groupadd --system --gid 1001 bouncewatch \
    && useradd --system --uid 1001 --gid 1001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin bouncewatch \
    && install -d -o 1001 -g 1001 -m 0750 /var/lib/bouncewatch

COPY --from=build /opt/bouncewatch /opt/bouncewatch

ENV PATH=/opt/bouncewatch/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BOUNCEWATCH_DATA_DIR=/var/lib/bouncewatch \
    BOUNCEWATCH_WEB_PORT=6066

USER 1001:1001
WORKDIR /var/lib/bouncewatch
EXPOSE 6066

# `docker run IMAGE` runs the worker; `docker run IMAGE topics create` (or any other
# subcommand) runs that instead.
ENTRYPOINT ["bouncewatch"]
CMD ["worker"]
