# The production image: slim Python, a virtualenv built in a separate stage, static files
# collected at build time, gunicorn as an unprivileged user. See docs/deploying.md.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY requirements.txt .
# Only the "# Runtime" block of requirements.txt: no embedded servers, no test tools.
RUN sed -n '/^# Runtime/,/^# Embedded/p' requirements.txt | grep -v '^#' > runtime.txt \
    && python -m venv /venv \
    && /venv/bin/pip install -r runtime.txt

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=flashsale.settings.production \
    BIND=0.0.0.0:8000 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/flashsale-metrics
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin flashsale
COPY --from=build /venv /venv
WORKDIR /app
COPY . .
# collectstatic needs settings to import, not servers: throwaway values, used for nothing else.
RUN SECRET_KEY=build-only-not-secret DATABASE_URL=postgres://build@localhost/none REDIS_URL=redis://localhost/0 \
    python manage.py collectstatic --noinput --verbosity 0
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health/', timeout=2)"
CMD ["gunicorn", "--config", "gunicorn.conf.py", "flashsale.wsgi:application"]
