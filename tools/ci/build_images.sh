#!/usr/bin/env bash
# Build job images from docker/Dockerfile with buildah, without a Docker daemon, for the PEXes
# `./pants package` left in dist/src.python.jobs/, into dist/images/<job>.oci.tar; prints each
# image's size and build time. The Debian base is made once (debootstrap, cached in
# ~/.cache/etl-platform/base-images) and imported once per run for every image.
#   tools/ci/build_images.sh                      # every job (every job stage of the Dockerfile)
#   tools/ci/build_images.sh bronze_to_silver     # just these jobs
set -euo pipefail
cd "$(dirname "$0")/../.."

revision=${GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
PYTHONPATH=tools exec python3.11 -m job_images.build --revision "$revision" \
  --source "${IMAGE_SOURCE:-unknown}" "$@"
