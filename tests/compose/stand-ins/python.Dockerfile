# Stand-in for python:3.11-slim-bookworm (images/airflow/Dockerfile's PYTHON_IMAGE), which cannot
# be pulled here: the debootstrapped Debian base with Debian's Python 3.11, venv support, a
# `python` command, and the build machine's CA bundle for pip (bind-mounted at build time).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv python-is-python3 \
 && rm -rf /var/lib/apt/lists/* \
 && cp /host/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
