# The portal's image; docker-compose.yml runs it as migrate, web, worker and beat with different commands.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 AUTOPATCH_VAR_DIR=/app/var
WORKDIR /app
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home --shell /usr/sbin/nologin portal
# Production dependencies only: the test tools are in requirements-dev.txt, which .dockerignore keeps out.
COPY requirements.txt pyproject.toml ./
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# Static files are collected at build time, owned by root so the running portal cannot change them; var/ itself
# (beat's schedule, the embedded broker's folders when REDIS_URL is unset) is the portal user's.
RUN pip install --no-cache-dir --no-deps -e . \
    && SECRET_KEY=build-only python manage.py collectstatic --noinput -v0 \
    && chown portal:portal var && chown -R portal:portal var/celery
USER portal
EXPOSE 8000
CMD ["gunicorn", "autopatch_portal.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
