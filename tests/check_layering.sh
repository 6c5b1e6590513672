#!/usr/bin/env bash
# Fails when a layer includes a header from a layer above it.
# Order (lowest first): common, kernels, cache, offload, runtime, apps.
set -u
root=${1:-.}
status=0
check() {  # folder, forbidden include prefixes...
  local dir=$1; shift
  for bad in "$@"; do
    hits=$(grep -rnE "#include \"$bad/" "$root/$dir" --include='*.h' --include='*.cpp' --include='*.cu' --include='*.cuh' 2>/dev/null)
    if [[ -n "$hits" ]]; then echo "layering: $dir/ must not include $bad/:"; echo "$hits"; status=1; fi
  done
}
check common kernels cache offload runtime apps
check kernels cache offload runtime apps
check cache offload runtime apps
check offload runtime apps
check runtime apps
exit $status
