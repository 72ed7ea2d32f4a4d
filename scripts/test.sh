#!/usr/bin/env bash
# Set up, build, then run the C unit tests (ctest) and the integration suite
# (pytest with Debian's python3). Exits non-zero if either fails; pytest's
# summary line is the last line printed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! bash scripts/setup.sh; then
  echo "test: setup/build failed" >&2
  # Still run pytest: it fails loudly on a missing library and ends with its summary.
  setup_rc=1
else
  setup_rc=0
fi

ctest_rc=0
if [ -f build/CTestTestfile.cmake ]; then
  echo "test: ctest"
  (cd build && ctest --output-on-failure --timeout 300) || ctest_rc=$?
else
  echo "test: no build/CTestTestfile.cmake, ctest skipped" >&2
  ctest_rc=1
fi

echo "test: pytest tests/integration"
/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration
pytest_rc=$?

if [ "$setup_rc" -ne 0 ] || [ "$ctest_rc" -ne 0 ] || [ "$pytest_rc" -ne 0 ]; then
  exit 1
fi
exit 0
