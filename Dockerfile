# syntax=docker/dockerfile:1
# The clickstream worker: `clickstream consume`, the KCL MultiLangDaemon (Java) and one Python
# record processor per shard. Build: docker build -t clickstream-worker .
#
# The build runs the same commands as scripts/bootstrap.sh (which `make test` runs in CI):
# Maven resolves the jars pinned by infra/kcl/pom.xml, and uv installs the project from
# uv.lock with amazon_kclpy built offline against those jars. tests/functional/test_image.py
# checks that the two stay the same and lints this file with hadolint.
# Nothing is downloaded when the container starts.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# -- 1. The KCL MultiLangDaemon's jars ----------------------------------------------------------
FROM maven:3.9.9-eclipse-temurin-17 AS kcl-jars
WORKDIR /app
COPY infra/kcl/pom.xml infra/kcl/pom.xml
RUN mvn --batch-mode --quiet -f infra/kcl/pom.xml -Dmaven.repo.local=/app/.tools/m2 \
        dependency:copy-dependencies -DexcludeTransitive=true \
        -DoutputDirectory=/app/.tools/kcl/jars

# -- 2. The project and its locked dependencies, in /app/.venv -------------------------------
FROM ${PYTHON_IMAGE} AS python-deps
WORKDIR /app
ENV UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    KCL_MVN_REPO_SEARCH_URL=file:///app/.tools/m2/
RUN pip install --no-cache-dir --disable-pip-version-check uv==0.13.8
COPY --from=kcl-jars /app/.tools/m2 /app/.tools/m2
COPY pyproject.toml uv.lock README.md ./
# Dependencies first (a layer that changes only with uv.lock), then the project itself.
RUN uv sync --locked --no-dev --no-install-project
COPY clickstream clickstream
COPY consumer consumer
COPY producer producer
COPY insights insights
COPY collector collector
RUN uv sync --locked --no-dev --no-editable

# -- 3. Runtime: slim Python, a Java 17 runtime, the jars and the venv; not root --------------
FROM ${PYTHON_IMAGE}
COPY --from=eclipse-temurin:17.0.13_11-jre /opt/java/openjdk /opt/java/openjdk
RUN groupadd --system --gid 10001 clickstream \
    && useradd --system --uid 10001 --gid clickstream --home-dir /app --no-create-home clickstream
WORKDIR /app
COPY --from=kcl-jars /app/.tools/kcl/jars /opt/kcl/jars
COPY --from=python-deps /app/.venv /app/.venv
ENV JAVA_HOME=/opt/java/openjdk \
    PATH=/app/.venv/bin:/opt/java/openjdk/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CLICKSTREAM_KCL_JARS_DIR=/opt/kcl/jars \
    CLICKSTREAM_HEALTH_FILE=/tmp/clickstream-health
USER 10001:10001
# ECS runs the same check (infra/cloudformation.yaml): the worker touches the file while its
# KCL daemon runs.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["clickstream", "health"]
ENTRYPOINT ["clickstream", "consume"]
