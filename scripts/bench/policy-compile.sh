#!/usr/bin/env bash
# Peak memory and time of compiling a policy of N stateful rules, measured on
# `flowgate --check` (which loads and compiles the policy exactly as start-up and a reload
# do, and exits) with /usr/bin/time -v.
#
#   scripts/bench/policy-compile.sh [N...]      (default: 30000 100000)
#
# Rule i drops TCP to its own /32 in 198.18.0.0/15 and its own port, from any source: every
# rule adds boundaries to the destination address and port dimensions, the shape that used
# to make the classifier's class bitsets grow with rules x rules. `policy.max_rules` is set
# to N so the bigger policies are accepted.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
BIN="${FLOWGATE_BIN:-$FG_ROOT/target/release/flowgate}"
[ -x "$BIN" ] || die "no $BIN: cargo build --release --bins first"
[ -x /usr/bin/time ] || die "/usr/bin/time (GNU time) is needed"
WORK="$(mktemp -d /tmp/flowgate-compile.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(30000 100000)
printf '%-8s %12s %10s\n' rules peak_rss_mb wall
for v in "${sizes[@]}"; do
    awk -v n="$v" 'BEGIN {
        for (i = 0; i < n; i++) {
            a = 1 + i; # skip 198.18.0.0
            printf "drop tcp any any -> 198.%d.%d.%d %d (msg:\"r%d\"; sid:%d;)\n",
                18 + int(a / 65536), int(a / 256) % 256, a % 256, 1024 + i % 60000, i, 1000000 + i
        }
    }' >"$WORK/rules.rules"
    printf '[stateful]\nrule_order = "default_action_order"\n[[stateful.rule_groups]]\nname = "g"\nrules_file = "rules.rules"\n' >"$WORK/policy.toml"
    cat >"$WORK/fg.toml" <<TOML
[appliance]
firewall_name = "compile"
firewall_arn = "arn:aws:network-firewall:us-east-1:000000000000:firewall/compile"
zone = "z"
state_dir = "state"
[eal]
args = ["--no-huge"]
[[port_pair]]
a = "net_null0"
b = "net_null1"
[workers]
lcores = [1]
[policy]
file = "policy.toml"
max_rules = $v
[mgmt]
auth = "none"
TOML
    /usr/bin/time -v "$BIN" --config "$WORK/fg.toml" --check >"$WORK/out" 2>"$WORK/time" \
        || { cat "$WORK/out" "$WORK/time" >&2; die "flowgate --check failed for $v rules"; }
    rss_kb="$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/time")"
    secs="$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$WORK/time")"
    awk -v n="$v" -v kb="$rss_kb" -v t="$secs" 'BEGIN { printf "%-8s %12.1f %10s\n", n, kb / 1024, t }'
done
