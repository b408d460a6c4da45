#!/usr/bin/env bash
# Sums up the oracle checks the tests skipped for want of an outside tool (a skipped check
# shows as `ok` in cargo's output): FILE holds one line per skip, the tool, a tab, the test.
# Prints nothing when none was skipped.
set -euo pipefail
file="${1:?usage: oracle-skips.sh FILE}"
[ -s "$file" ] || exit 0
total=$(sort -u "$file" | wc -l)
tools=$(sort -u "$file" | cut -f1 | sort | uniq -c | sort -rn |
    awk '{n=$1; $1=""; sub(/^ /, ""); printf "%s%s (%d)", sep, $0, n; sep=", "}')
echo "oracle checks skipped: $total, for want of: $tools"
echo "(scripts/install-test-deps.sh installs them; with CI=1 a missing tool fails its test)"
