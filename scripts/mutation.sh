#!/usr/bin/env bash
# Mutation testing of vigil's core modules with mutmut 3 (config: [tool.mutmut] in pyproject.toml).
#
# mutmut names mutants by file path and expects that path to be the import path, but vigil
# maps top-level folders onto the `vigil` namespace (package-dir). So this script stages a
# copy laid out as vigil/<package>/..., runs mutmut there, and prints the results.
# Usage: scripts/mutation.sh [STAGE_DIR [PATTERN...]]   (default build/mutation; reruns reuse its cache)
#   PATTERNs pick mutants by name, e.g. 'vigil.serve.request_body.*' for one module (fnmatch).
# Bounded for a 2-core machine: two children, targeted tests only (see pytest_add_cli_args_test_selection).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
stage="${1:-$repo/build/mutation}"
patterns=("${@:2}")
python="${PYTHON:-$repo/.venv/bin/python}"
mkdir -p "$stage/vigil"
cd "$stage"
rm -rf vigil/* tests data cache
export VIGIL_TEST_CACHE="$stage/cache"  # build the tiny stand-in once, not once per mutant
for package in export runtime files cli serve evaluate distributed; do
    cp -r "$repo/$package" "vigil/$package"
done
cp "$repo/vigil/__init__.py" vigil/  # the face
cp -r "$repo/tests" "$repo/data" "$repo/pyproject.toml" .
"$python" -m mutmut run --max-children "${MUTATION_CHILDREN:-2}" "${patterns[@]}" || true
"$python" -m mutmut results --all true
