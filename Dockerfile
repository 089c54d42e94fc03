# syntax=docker/dockerfile:1
#
# chatd as a small container image: a static binary (CGO_ENABLED=0; the
# SQLite driver is pure Go) on distroless/static, which holds CA
# certificates, time zone data and a non-root user, and nothing else (no
# shell). See docs/deploy.md.
#
#   docker build -t chatd .
#   docker run -p 8000:8000 -e ALLOWED_HOSTS=localhost chatd
#
# Admin commands run the same binary: docker run --rm -it chatd createuser alice

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
# Dependencies first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN go build -ldflags="-s -w -X main.version=${VERSION}" -o /out/chatd ./cmd/chatd \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/chatd /usr/local/bin/chatd
# DATA_DIR holds the SQLite database when DATABASE_URL is empty; it must be
# writable by the non-root user (uid 65532 in distroless).
COPY --from=build --chown=65532:65532 /out/data /data
ENV ENVIRONMENT=production \
    ADDR=0.0.0.0:8000 \
    DATA_DIR=/data
USER 65532:65532
EXPOSE 8000
VOLUME ["/data"]
ENTRYPOINT ["/usr/local/bin/chatd"]
CMD ["serve"]
