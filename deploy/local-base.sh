#!/bin/sh
# Build a Debian bookworm base image (python3 3.11, python3-venv, ca-certificates) from Debian's own packages, for
# machines that reach Debian's archive and PyPI but no container registry. The Dockerfiles take it as their BASE:
#   deploy/local-base.sh [TAG] [MIRROR]           (root; needs debootstrap and podman or docker)
#   podman build --build-arg BASE=cead-base:bookworm -f deploy/Dockerfile.gateway -t cead-gateway .
set -eu
TAG="${1:-cead-base:bookworm}"
MIRROR="${2:-http://deb.debian.org/debian}"
ENGINE="${CEAD_CONTAINER_ENGINE:-$(command -v podman || command -v docker)}"
: "${ENGINE:?no podman or docker found}"
command -v debootstrap >/dev/null || { echo "debootstrap is needed (apt-get install debootstrap)" >&2; exit 2; }
ROOT="$(mktemp -d "${TMPDIR:-/var/tmp}/cead-base.XXXXXX")"
trap 'rm -rf "$ROOT"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$ROOT" "$MIRROR" >&2
# nothing of the build host in the image: no resolver, hostname or apt lists
: > "$ROOT/etc/resolv.conf"
rm -f "$ROOT/etc/hostname"
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/archives/*.deb
tar -C "$ROOT" -c . | "$ENGINE" import --change 'CMD ["/bin/bash"]' - "$TAG"
