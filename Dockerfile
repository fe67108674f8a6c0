# The gateway image: the same bootstrap CI proves, without the local servers (Redis and
# Postgres run as their own services; see README "Operations").
FROM debian:bookworm-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY ledger ./ledger
COPY sql ./sql
COPY scripts ./scripts
RUN scripts/bootstrap.sh --no-servers
ENV PATH=/app/.venv/bin:$PATH
EXPOSE 8000
USER nobody
ENTRYPOINT ["convenio"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
