# The gateway image: the package and its pinned runtime dependencies only (no test or bench
# extras, not editable), without the local servers (Redis and Postgres run as their own
# services; see README "Deploying with Docker").
FROM debian:bookworm-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY ledger ./ledger
COPY sql ./sql
RUN python3 -m venv /app/.venv \
    && /app/.venv/bin/pip install --no-cache-dir -q . \
    && rm -rf build *.egg-info
ENV PATH=/app/.venv/bin:$PATH CONVENIO_SQL_DIR=/app/sql
EXPOSE 8000
USER nobody
ENTRYPOINT ["convenio"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
