# Grace stages image (compose.yaml). NATS runs as its own service.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY grace ./grace
COPY producers ./producers
COPY processors ./processors
COPY actuators ./actuators
COPY projections ./projections
COPY bench ./bench
COPY playbooks ./playbooks
COPY examples ./examples
# the example system is a host's system in compose.yaml: its agent writes snapshots and state there
RUN pip install --no-cache-dir . && useradd --system --home /data grace && mkdir -p /data \
    && chown grace /data && chown -R grace /app/examples
USER grace
VOLUME ["/data"]
EXPOSE 8181
ENTRYPOINT []
CMD ["grace", "--help"]
