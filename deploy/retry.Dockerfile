# syntax=docker/dockerfile:1
# postback-retry: the retry service (health :7071).
#
# Build from the repository root (the context is the go.work workspace):
#   docker build -f deploy/retry.Dockerfile --build-arg VERSION=$(git describe --tags --always --dirty) -t postback-retry .
# The final image is distroless static, nonroot (uid 65532), with no shell: the
# binary, CA certificates (postbacks go to https endpoints) and /healthcheck.

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
# Module files first: the download layer is reused until a go.mod/go.sum changes.
# Every `use` directory of go.work must be listed here (make deploy-check verifies it).
COPY go.work go.work.sum ./
COPY pkg/go.mod pkg/go.sum pkg/
COPY proto/go.mod proto/go.sum proto/
COPY services/gateway/go.mod services/gateway/go.sum services/gateway/
COPY services/historian/go.mod services/historian/go.sum services/historian/
COPY services/renderer/go.mod services/renderer/go.sum services/renderer/
COPY services/retry/go.mod services/retry/go.sum services/retry/
COPY services/sender/go.mod services/sender/go.sum services/sender/
COPY services/standalone/go.mod services/standalone/go.sum services/standalone/
RUN go mod download
COPY pkg/ pkg/
COPY proto/ proto/
COPY services/ services/
COPY deploy/healthcheck/ deploy/healthcheck/
ARG VERSION=dev
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/postback-retry ./services/retry/cmd/postback-retry \
 && cd deploy/healthcheck && GOWORK=off GOOS=$TARGETOS GOARCH=$TARGETARCH \
      go build -trimpath -ldflags "-s -w" -o /out/healthcheck .

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="postback-retry" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/postback-dev/postback"
COPY --from=build /out/postback-retry /postback-retry
COPY --from=build /out/healthcheck /healthcheck
# Listen on every interface inside the container (the binary's default is loopback).
ENV POSTBACK_GRPC_ADDR=0.0.0.0:7070 \
    POSTBACK_HTTP_ADDR=0.0.0.0:7071
USER 65532:65532
EXPOSE 7071
ENTRYPOINT ["/postback-retry"]
