#!/bin/sh
# Regenerates dbwatch.rules.yml from the threshold rules dbwatch ships (rules/defaults.yaml), so the file
# Prometheus loads says exactly what the agent evaluates. Run it after editing rules/defaults.yaml, then
# `promtool check rules dbwatch.rules.yml && promtool test rules tests.yml` (tests/test_deploy_prometheus.py
# fails while the committed file differs from a fresh export).
#   deploy/prometheus/regenerate.sh [OUTPUT]      default OUTPUT: dbwatch.rules.yml beside this script
# DBWATCH names the dbwatch command; by default the repository's .venv/bin/dbwatch, else dbwatch on PATH.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/dbwatch.rules.yml}
dbwatch=${DBWATCH:-$here/../../.venv/bin/dbwatch}
[ -x "$dbwatch" ] || dbwatch=dbwatch
tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f "$tmp"' EXIT
chmod 0644 "$tmp"
"$dbwatch" rules export --format prometheus > "$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "wrote $out"
