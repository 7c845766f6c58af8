FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOOKLINE_VAR_DIR=/app/var
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY webhooks ./webhooks
COPY subscriptions ./subscriptions
COPY deliveries ./deliveries
COPY dashboard ./dashboard
COPY inbox ./inbox
COPY operations ./operations
COPY benchmarks ./benchmarks
# hookline_receiver (signing and verification) is installed from the receiver package's folder.
COPY receiver/hookline_receiver ./receiver/hookline_receiver
COPY templates ./templates
COPY manage.py ./
RUN pip install --no-cache-dir . \
    && SECRET_KEY=build-only python manage.py collectstatic --noinput \
    && mkdir -p /app/var/prometheus \
    && useradd --system --home /app hookline && chown -R hookline /app/var
USER hookline
EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000"]
