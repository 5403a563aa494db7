#!/usr/bin/env bash
# Build daemonless OCI images (dist/images/<job>.oci.tar) for PEXes that `./pants package` left
# in dist/src.python.jobs/, and print each image's digest, size and build time.
#   tools/ci/build_images.sh                      # every dist/src.python.jobs/*.pex
#   tools/ci/build_images.sh bronze_to_silver     # just these jobs
set -euo pipefail
cd "$(dirname "$0")/../.."

pexes=()
if (($# == 0)); then
  for pex in dist/src.python.jobs/*.pex; do [[ -e "$pex" ]] && pexes+=("$pex"); done
else
  for job in "$@"; do pexes+=("dist/src.python.jobs/$job.pex"); done
fi
if ((${#pexes[@]} == 0)); then
  echo "build_images: no PEX under dist/src.python.jobs/ (run ./pants package first)" >&2
  exit 2
fi

revision=${GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
# The base layer is made from Debian's python3.11, so the images run it, not pyenv's.
PYTHONPATH=tools exec /usr/bin/python3.11 -m oci.build_image --revision "$revision" \
  --out-dir dist/images "${pexes[@]}"
