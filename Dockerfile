# ITFF images: `docker build --target api -t itff-api .` and `docker build --target dashboard -t itff-dashboard .`
# Models are mounted at /srv/itff/models, or synced at start from ITFF_ARTIFACT_BASE_URL (sha256-checked).

# ---- shared dependency layer: rebuilt only when pyproject.toml changes -------------------------------------------
FROM python:3.11-slim AS base
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 KERAS_BACKEND=jax
WORKDIR /app
# LightGBM's wheel (the gbm and blend families) links the OpenMP runtime, which the slim image lacks
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY itff/__init__.py itff/__init__.py
RUN pip install ".[dashboard]" && pip uninstall -y itff
# ---- the package itself ------------------------------------------------------------------------------------------
COPY itff/ itff/
COPY dashboard/ dashboard/
COPY deploy/ deploy/
RUN pip install --no-deps .
RUN useradd --create-home --uid 10001 itff && mkdir -p /srv/itff/models /srv/itff/reports /srv/itff/data && chown -R itff /srv/itff
ENV ITFF_HOME=/srv/itff
WORKDIR /srv/itff
USER itff
ENTRYPOINT ["/app/deploy/docker-entrypoint.sh"]

# ---- the prediction service ----------------------------------------------------------------------------------------
FROM base AS api
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"
CMD ["uvicorn", "itff.api:app", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]

# ---- the Voila dashboard -------------------------------------------------------------------------------------------
FROM base AS dashboard
EXPOSE 8050
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8050/health', timeout=4).status != 200)"
CMD ["itff-dashboard", "--notebook", "/app/dashboard/app.ipynb", "--host", "0.0.0.0", "--port", "8050"]
