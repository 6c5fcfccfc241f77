#!/usr/bin/env bash
# Make the image the Dockerfile starts FROM, docker.io/library/debian:bookworm-slim, on a machine without
# an image registry: debootstrap a minimal Debian bookworm from Debian's own package mirror, then import it
# under the official image's name into the local containers storage (shared by podman and buildah).
# Idempotent: does nothing when that image is already there. Needs root, debootstrap and podman.
# Where a registry is reachable (docker, or podman/buildah with network to docker.io), you do not need
# this: the build pulls the real image.
#   tools/base-image.sh            make it if missing
#   tools/base-image.sh --force    remake it
set -euo pipefail

IMAGE="${BASE_IMAGE:-docker.io/library/debian:bookworm-slim}"
SUITE="${BASE_SUITE:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if [ "${1:-}" != "--force" ] && podman image exists "$IMAGE"; then
    echo "base image $IMAGE: present"
    exit 0
fi
for tool in debootstrap podman; do
    command -v "$tool" >/dev/null || {
        echo "error: $tool is missing: apt-get install -y debootstrap podman buildah (as root)" >&2
        exit 2
    }
done
if [ "$(id -u)" != 0 ]; then
    echo "error: debootstrap needs root: run tools/base-image.sh as root" >&2
    exit 2
fi

root="$(mktemp -d /var/tmp/repro-rootfs.XXXXXX)"
trap 'rm -rf "$root"' EXIT
echo "base image $IMAGE: debootstrap --variant=minbase $SUITE from $MIRROR"
debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 || {
    tail -n 20 "$root.log" >&2
    echo "error: debootstrap failed (full log: $root.log)" >&2
    exit 1
}
rm -f "$root.log"
# Like the official slim image: no apt lists or caches, no docs.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
tar -C "$root" --numeric-owner -c . | podman import \
    --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "$IMAGE" >/dev/null
echo "base image $IMAGE: imported ($(podman image inspect --format '{{.Size}}' "$IMAGE") bytes)"
