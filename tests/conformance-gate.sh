#!/usr/bin/env bash
# Runs `m3ddm-conformance CASES` and compares its FAIL lines with the expected-failure
# list: exit 0 only when exactly the listed cases fail (and at least one case ran).
set -uo pipefail
runner=$1 cases=$2 expected=$3
log=$(mktemp); trap 'rm -f "$log"' EXIT
"$runner" "$cases" | tee "$log"
grep -qE '^[0-9]+ passed, [0-9]+ failed$' "$log" || { echo "conformance: the runner did not finish"; exit 1; }
failed=$(sed -n 's/^FAIL \([^:]*\):.*/\1/p' "$log" | sort)
listed=$(grep -vE '^\s*(#|$)' "$expected" | cut -d: -f1 | sort)
present=$(for name in $listed; do grep -qE "^(PASS|FAIL) $name[ :]" "$log" && echo "$name"; done)
unexpected=$(comm -23 <(echo "$failed") <(echo "$present") | grep . || true)
fixed=$(comm -13 <(echo "$failed") <(echo "$present") | grep . || true)
[ -z "$present" ] || echo "expected failures (listed in $expected):" $present
[ -z "$unexpected" ] || { echo "conformance: unexpected failures:" $unexpected; exit 1; }
[ -z "$fixed" ] || { echo "conformance: listed as failing but passed, remove from $expected:" $fixed; exit 1; }
passed=$(grep -c '^PASS ' "$log")
echo "conformance: $passed passed, 0 unexpected failures, $(echo $present | wc -w) expected failures"
exit 0
