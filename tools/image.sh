#!/usr/bin/env bash
# Build the kit's image and test it: docker where a docker daemon answers, else buildah (root, no daemon).
#   tools/image.sh build   build the image IMAGE (default repro) with its labels
#   tools/image.sh test    build, then run `make test` and `make smoke` inside it, offline (no GPU needed)
#   tools/image.sh info    print the image's size, labels and torch's CUDA version
# buildah path: the base image is made locally first (tools/base-image.sh, idempotent); builds run with
# `--isolation chroot` and, when CA_BUNDLE exists, mount it at /run/build-ca.crt for pip (BUILD_CA) so that a
# TLS-intercepting proxy's CA is trusted during the build (it is not copied into the image).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

IMAGE="${IMAGE:-repro}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
KIT_VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml)"
CONSTRAINTS_SHA256="$(sha256sum constraints.txt | cut -d' ' -f1)"
BUILD_ARGS=(--build-arg "KIT_VERSION=$KIT_VERSION" --build-arg "CONSTRAINTS_SHA256=$CONSTRAINTS_SHA256")
# Inside the image every test and smoke run is offline (the hub is never contacted, pip never runs).
IN_IMAGE='export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PIP_NO_INDEX=1; make test && make smoke'

use_docker() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

need_buildah() {
    command -v buildah >/dev/null || {
        echo "error: no docker daemon and no buildah: apt-get install -y buildah podman debootstrap (as root)" >&2
        exit 2
    }
    if [ "$(id -u)" != 0 ]; then
        echo "error: buildah builds here run as root (--isolation chroot): run as root or use docker" >&2
        exit 2
    fi
}

timed() {  # timed LABEL CMD...: run CMD, then print LABEL and its wall time
    local label="$1" start=$SECONDS
    shift
    "$@"
    echo "== $label: $((SECONDS - start)) s"
}

build() {
    if use_docker; then
        timed "docker build" docker build -t "$IMAGE" "${BUILD_ARGS[@]}" .
        return
    fi
    need_buildah
    tools/base-image.sh
    local mounts=()
    [ -f "$CA_BUNDLE" ] && mounts=(-v "$CA_BUNDLE:/run/build-ca.crt:ro" --build-arg BUILD_CA=/run/build-ca.crt)
    timed "buildah bud" buildah bud --isolation chroot --format docker --layers "${mounts[@]}" \
        "${BUILD_ARGS[@]}" -t "$IMAGE" .
}

info() {
    if use_docker; then
        docker image inspect --format '{{.Size}} bytes; labels {{json .Config.Labels}}' "$IMAGE"
        docker run --rm "$IMAGE" python -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)"
        return
    fi
    need_buildah
    podman image inspect --format '{{.Size}} bytes; labels {{json .Labels}}' "$IMAGE"
    in_buildah python -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)"
}

in_buildah() {  # run a command in a throwaway container of IMAGE, without network
    local ctr status=0
    ctr="$(buildah from --pull-never "$IMAGE")"
    # --isolation chroot shares the caller's network (buildah refuses --network none there), so the
    # command runs in a new network namespace (unshare --net) with only loopback up: truly offline, while
    # tests that serve files on 127.0.0.1 still work.
    unshare --net sh -c 'ip link set lo up && exec "$@"' sh \
        buildah run --isolation chroot "$ctr" -- "$@" || status=$?
    buildah rm "$ctr" >/dev/null
    return "$status"
}

test_image() {
    build
    if use_docker; then
        timed "tests + smoke in the image" docker run --rm --network none "$IMAGE" bash -c "$IN_IMAGE"
    else
        timed "tests + smoke in the image" in_buildah bash -c "$IN_IMAGE"
    fi
    info
}

case "${1:-}" in
    build) build ;;
    test) test_image ;;
    info) info ;;
    *) echo "usage: tools/image.sh build|test|info" >&2; exit 2 ;;
esac
