# Stand-in for golang:1.26-bookworm (images/minio/Dockerfile's GO_IMAGE), which cannot be pulled
# on a machine without registry access: the debootstrapped Debian base plus the build machine's
# own Go toolchain and CA bundle, both bind-mounted read-only by scripts/compose-podman.sh.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG GOPROXY=https://proxy.golang.org,direct
RUN cp -a /host/go /usr/local/go \
 && cp /host/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt \
 && mkdir -p /go
ENV PATH=/usr/local/go/bin:/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    GOPATH=/go \
    GOPROXY=${GOPROXY}
