#!/usr/bin/env bash
# `docker run` for a machine without a docker daemon: the subset of `docker run` that `make docker-run`
# uses, translated to buildah (as root, `--isolation chroot`, like tools/image.sh). The one place where the
# docker command line is translated:
#   make docker-run DOCKER=tools/docker-buildah.sh DOCKER_GPUS= TARGET=...
#
#   docker run                      buildah
#   --rm                            buildah from IMAGE; buildah run; buildah rm (always: nothing is committed)
#   --user U:G                      --user U:G (chroot isolation maps no ids: files on the binds are U:G's)
#   --env NAME=VALUE                --env NAME=VALUE
#   --env NAME (value from env)     the value goes in on stdin and is exported by a `sh` in the container,
#                                   so it is on no command line (`ps`) and in no file; buildah's own
#                                   `--env NAME` would drop it
#   -v HOST:CTR, -w DIR             -v HOST:CTR, --workingdir DIR
#   --gpus ...                      refused: no GPU passthrough here (DOCKER_GPUS= runs without a GPU)
# The container shares the host's network (chroot isolation), so a hub on 127.0.0.1 is reachable.
set -euo pipefail

usage() { echo "usage: tools/docker-buildah.sh run [--rm] [--user U:G] [--env NAME[=VALUE]] [-v HOST:CTR] [-w DIR] IMAGE CMD..." >&2; exit 2; }

[ "${1:-}" = run ] || usage
shift
opts=()
by_name=()  # variables passed by name: their values travel on stdin
while [ $# -gt 0 ]; do
    case "$1" in
        --rm) shift ;;
        --user|-u) opts+=(--user "$2"); shift 2 ;;
        --env|-e)
            [ $# -ge 2 ] || usage
            if [[ "$2" == *=* ]]; then
                opts+=(--env "$2")
            elif [[ "$2" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
                [ -n "${!2+set}" ] && by_name+=("$2")  # like docker: unset on the host, unset inside
            else
                echo "error: --env $2: not a variable name" >&2; exit 2
            fi
            shift 2 ;;
        -v|--volume) opts+=(-v "$2"); shift 2 ;;
        -w|--workdir) opts+=(--workingdir "$2"); shift 2 ;;
        --gpus|--gpus=*)
            echo "error: $1: buildah run has no GPU passthrough here; run without one (make docker-run DOCKER_GPUS=)" >&2
            exit 2 ;;
        -*) echo "error: docker run option $1 is not translated to buildah (tools/docker-buildah.sh)" >&2; exit 2 ;;
        *) break ;;
    esac
done
[ $# -ge 2 ] || usage
image="$1"
shift
command -v buildah >/dev/null || { echo "error: buildah is missing: apt-get install -y buildah (as root)" >&2; exit 2; }

ctr="$(buildah from --pull-never --quiet "$image")"
trap 'buildah rm "$ctr" >/dev/null' EXIT

# The container's first process reads one line per variable from stdin (printf is a shell builtin: the
# values are on no command line), exports them, then execs the command with stdin closed.
# shellcheck disable=SC2016
prelude='for name in $REPRO_ENV_BY_NAME; do IFS= read -r value; export "$name=$value"; done; unset value name REPRO_ENV_BY_NAME; exec "$@" </dev/null'
status=0
for name in "${by_name[@]+"${by_name[@]}"}"; do printf '%s\n' "${!name}"; done \
    | buildah run --isolation chroot "${opts[@]}" --env "REPRO_ENV_BY_NAME=${by_name[*]+"${by_name[*]}"}" "$ctr" \
        -- sh -c "$prelude" sh "$@" || status=$?
exit "$status"
