# syntax=docker/dockerfile:1
# Outrigger's images (the build machines here have no Docker engine, so this file is kept small and
# obvious rather than tested by CI):
#   docker build -t outrigger:0.1.0 --build-arg VERSION=0.1.0 .
#       distroless, non-root: outrigger (the proxy) and outrigger-cp (control plane, injector,
#       sidecar-init) in /usr/local/bin
#   docker build -t outrigger-redirect:0.1.0 --build-arg VERSION=0.1.0 --target redirect .
#       the transparent-capture init step: outrigger redirect-traffic needs the nft and iptables
#       commands; it runs as root with NET_ADMIN for the moment it takes, then exits
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ENV CGO_ENABLED=0
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
	go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/outrigger ./proxy/cmd/outrigger && \
	go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/outrigger-cp ./controlplane/cmd/outrigger-cp

FROM debian:bookworm-slim AS redirect
RUN apt-get update && apt-get install -y --no-install-recommends nftables iptables && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/outrigger /usr/local/bin/
ENTRYPOINT ["outrigger", "redirect-traffic"]

# The default target, last: distroless, no shell, non-root (the injector runs the sidecar as UID 5995).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/outrigger /out/outrigger-cp /usr/local/bin/
USER 65532:65532
EXPOSE 18000 19000 8443
ENTRYPOINT ["outrigger"]
