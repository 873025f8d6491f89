# sluice in a container: docs/operations.md, "Containers", says how to
# run it. Two stages: the build (Go, build.sh) and a small Debian runtime
# with the binary, CA certificates (STARTTLS to receivers checks their
# certificates) and a non-root user.
#
#   docker build -t sluice .
#   docker run -d --name sluice -p 2525:2525 -p 127.0.0.1:8025:8025 \
#     -v sluice-data:/var/lib/sluice \
#     -v "$PWD/sluice.toml:/etc/sluice/sluice.toml:ro" sluice

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static (no cgo), so the runtime stage needs no Go; stamped with the
# revision when the build context has .git (see .dockerignore).
RUN CGO_ENABLED=0 ./build.sh /out/sluice

FROM debian:bookworm-slim
RUN apt-get update \
	&& apt-get install -y --no-install-recommends ca-certificates \
	&& rm -rf /var/lib/apt/lists/* \
	&& groupadd --system --gid 10025 sluice \
	&& useradd --system --uid 10025 --gid sluice --home-dir /var/lib/sluice \
		--no-create-home --shell /usr/sbin/nologin sluice \
	&& install -d -o sluice -g sluice -m 0700 /var/lib/sluice
COPY --from=build /out/sluice /usr/bin/sluice
COPY dist/docker/sluice.toml /etc/sluice/sluice.toml
USER sluice:sluice
# The queue (bbolt file, spool) and the admin socket: keep it on a volume,
# or a new container starts with an empty queue and the mail is lost.
VOLUME /var/lib/sluice
# SMTP (as in dist/docker/sluice.toml: 2525, so that no capability is
# needed; publish it as 25 with -p 25:2525) and /metrics, /readyz, the
# dashboard.
EXPOSE 2525 8025
# `sluice status` asks the daemon over its admin socket and exits 0 only
# when it is ready (not below the free-space reserve). start-period
# covers opening a large queue file.
HEALTHCHECK --interval=30s --timeout=10s --start-period=2m --retries=3 \
	CMD ["/usr/bin/sluice", "status", "--config", "/etc/sluice/sluice.toml"]
# docker stop sends SIGTERM and kills after 10 s unless --stop-timeout:
# dist/docker/sluice.toml drains for 8 s (shutdown_grace).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/sluice"]
CMD ["serve", "--config", "/etc/sluice/sluice.toml"]
