# Baton API / worker image. Needs DATABASE_URL (any Postgres); see compose.yaml. Without it
# the command exits 2 with one line saying so (the embedded Postgres is not in the image).
FROM python:3.11.14-slim-bookworm

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

# Dependencies first, exactly as uv.lock pins them (hash-checked): a change of code alone
# reuses this layer instead of reinstalling everything. No extras: the `embedded` Postgres
# and the `dev` tools stay out of the image.
COPY pyproject.toml uv.lock README.md ./
RUN pip install uv==0.13.9 \
    && uv export --frozen --no-emit-project --no-header -o /tmp/requirements.txt \
    && pip install --require-hashes -r /tmp/requirements.txt \
    && pip uninstall -y uv && rm /tmp/requirements.txt
COPY alembic.ini ./
COPY app ./app
COPY migrations ./migrations
RUN pip install --no-deps . && rm -rf build *.egg-info

USER baton

EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["baton", "serve", "--host", "0.0.0.0"]
