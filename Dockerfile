# Baton API / worker image. Needs DATABASE_URL (any Postgres); see compose.yaml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # Import `app` from /srv/baton rather than site-packages: Alembic's alembic.ini and
    # migrations/ are found next to the source tree, and they are not part of the package.
    PYTHONPATH=/srv/baton \
    BATON_ENVIRONMENT=production

WORKDIR /srv/baton

RUN groupadd --system --gid 10001 baton \
    && useradd --system --uid 10001 --gid baton --home-dir /srv/baton --shell /usr/sbin/nologin baton

COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
RUN pip install . && rm -rf build *.egg-info

USER baton

EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["baton", "serve", "--host", "0.0.0.0"]
