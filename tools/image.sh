#!/usr/bin/env bash
# Build the kit's image and test it: docker where a docker daemon answers, else buildah (root, no daemon).
#   tools/image.sh build   build the image IMAGE (default repro) with its labels
#   tools/image.sh test    build, then run `make test` and `make smoke` inside it, offline (no GPU needed)
#   tools/image.sh info    print the image's size, labels and torch's CUDA version
#   tools/image.sh room    exit 0 if the containers storage has room for a build (IMAGE_MIN_FREE_GB,
#                          default 26: a build from scratch peaked at 23 GB here; 4 when the venv layer of
#                          this constraints.txt is cached), else say so and exit 3
# A build removes its containers even when it fails (--force-rm), and after it succeeds removes the
# untagged images of this kit's earlier builds whose constraints.txt differed (their venv layer is ~6 GB).
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

IMAGE_MIN_FREE_GB="${IMAGE_MIN_FREE_GB:-26}"
IMAGE_CACHED_MIN_FREE_GB="${IMAGE_CACHED_MIN_FREE_GB:-4}"

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

storage_dir() {  # where the image's layers are written
    if use_docker; then
        docker info --format '{{.DockerRootDir}}'
    else
        buildah info --format '{{.store.GraphRoot}}' 2>/dev/null || echo /var/lib/containers/storage
    fi
}

room() {  # exit 3 (with what to do) when the storage has less than IMAGE_MIN_FREE_GB free
    local dir free_gb need="$IMAGE_MIN_FREE_GB"
    # with the venv layer cached, a build writes only the kit's sources (the tests inside need some room)
    cached && need="$IMAGE_CACHED_MIN_FREE_GB"
    dir="$(storage_dir)"
    while [ ! -d "$dir" ]; do dir="$(dirname "$dir")"; done
    free_gb="$(df -P -BG "$dir" | awk 'NR == 2 { sub("G", "", $4); print $4 }')"
    if [ "$free_gb" -lt "$need" ]; then
        echo "error: $dir has ${free_gb} GB free; this image build needs about ${need} GB" \
            "(a build from scratch writes its ~6 GB venv layer three times while committing it). Free" \
            "space there: old builds go with 'buildah rmi --prune' (or 'docker image prune'), leftover" \
            "build containers with 'buildah rm --all'; IMAGE_MIN_FREE_GB / IMAGE_CACHED_MIN_FREE_GB" \
            "set the threshold" >&2
        return 3
    fi
    echo "storage $dir: ${free_gb} GB free (this build needs about ${need} GB)"
}

image_constraints() {  # the constraints.txt hash an image was built from (its label), or nothing
    if use_docker; then
        docker image inspect --format '{{index .Config.Labels "repro.constraints.sha256"}}' "$1" 2>/dev/null
    else
        buildah inspect --type image --format '{{index .OCIv1.Config.Labels "repro.constraints.sha256"}}' "$1" \
            2>/dev/null
    fi
}

prune_stale() {  # untagged images of this kit built from another constraints.txt (each holds a ~6 GB venv)
    local ids id label
    if use_docker; then  # BuildKit keeps no intermediate images: the untagged finals are the old builds
        ids="$(docker images -q --filter dangling=true --filter label=org.opencontainers.image.title=repro)"
    else  # --layers keeps one image per step; newest first, so children go before their parents
        ids="$(buildah images -a --filter label=org.opencontainers.image.title=repro \
               --format '{{.CreatedAtRaw}}|{{.ID}}|{{.Name}}' | sort -r | awk -F'|' '$3 == "<none>" { print $2 }')"
    fi
    for id in $ids; do
        label="$(image_constraints "$id" || true)"
        if [ -n "$label" ] && [ "$label" != "$CONSTRAINTS_SHA256" ]; then
            if use_docker; then docker rmi "$id" >/dev/null 2>&1; else buildah rmi "$id" >/dev/null 2>&1; fi \
                && echo "removed image $id of an earlier build (constraints.txt $label)" || true
        fi
    done
}

cached() {  # an image of this kit built from this constraints.txt exists: its venv layer is reused
    local id
    if use_docker; then
        id="$(docker images -q --filter "label=repro.constraints.sha256=$CONSTRAINTS_SHA256" | head -n 1)"
    else
        id="$(buildah images -a -q --filter "label=repro.constraints.sha256=$CONSTRAINTS_SHA256" | head -n 1)"
    fi
    [ -n "$id" ]
}

build() {
    room || exit $?
    if use_docker; then
        timed "docker build" docker build --force-rm -t "$IMAGE" "${BUILD_ARGS[@]}" .
        prune_stale
        return
    fi
    need_buildah
    tools/base-image.sh
    local mounts=()
    [ -f "$CA_BUNDLE" ] && mounts=(-v "$CA_BUNDLE:/run/build-ca.crt:ro" --build-arg BUILD_CA=/run/build-ca.crt)
    timed "buildah bud" buildah bud --isolation chroot --format docker --layers --force-rm "${mounts[@]}" \
        "${BUILD_ARGS[@]}" -t "$IMAGE" .
    prune_stale
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
    room) room ;;
    *) echo "usage: tools/image.sh build|test|info|room" >&2; exit 2 ;;
esac
