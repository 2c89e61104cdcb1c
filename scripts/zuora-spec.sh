#!/usr/bin/env bash
# Finds Zuora's OpenAPI spec and writes the copy Stoplight Prism can load to OUT.yaml
# (scripts/zuora-prism-spec.py patches its dangling $refs). Looked for, in this order:
#
#   1. $DINMO_ZUORA_SPEC                 a path to zuora_openapi.yaml (an error if it is missing)
#   2. ../shared/zuora/zuora_openapi.yaml beside the repository
#   3. Zuora's published copy, downloaded when the network allows (cached in .ci/tools/)
#
# Exit 0: OUT.yaml written. Exit 3: no spec anywhere (one line on stderr says how to get one).
# Exit 1: a spec was named or found but cannot be used.
#
# Usage: scripts/zuora-spec.sh OUT.yaml
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: scripts/zuora-spec.sh OUT.yaml}
url=https://developer.zuora.com/yaml/zuora-openapi-full-compact.yaml
cache="$repo/.ci/tools/zuora-openapi-full-compact.yaml"

spec=""
if [ -n "${DINMO_ZUORA_SPEC:-}" ]; then
  [ -f "$DINMO_ZUORA_SPEC" ] || { echo "DINMO_ZUORA_SPEC=$DINMO_ZUORA_SPEC: no such file" >&2; exit 1; }
  spec=$DINMO_ZUORA_SPEC
elif [ -f "$repo/../shared/zuora/zuora_openapi.yaml" ]; then
  spec="$repo/../shared/zuora/zuora_openapi.yaml"
elif [ -s "$cache" ]; then
  spec=$cache
elif command -v curl >/dev/null 2>&1; then
  mkdir -p "$(dirname "$cache")"
  if curl -fsSL --connect-timeout 5 --max-time 120 -o "$cache.part" "$url" 2>/dev/null; then
    mv "$cache.part" "$cache"
    spec=$cache
  else
    rm -f "$cache.part"
  fi
fi
if [ -z "$spec" ]; then
  echo "no Zuora OpenAPI spec: not in DINMO_ZUORA_SPEC, not at ../shared/zuora/zuora_openapi.yaml, and $url could not be downloaded; download it and set DINMO_ZUORA_SPEC=/path/to/it to run the contract tests" >&2
  exit 3
fi
python3 "$repo/scripts/zuora-prism-spec.py" "$spec" "$out" 2>/dev/null || {
  echo "$spec: cannot be patched for Prism (python3 $repo/scripts/zuora-prism-spec.py $spec $out)" >&2
  exit 1
}
echo "$spec"
