#!/usr/bin/env bash
# Runs every libFuzzer target for a fixed budget (outside CI): the packet parser
# (dataplane/fuzz) and the policy/rules, config, AWS JSON, SigV4, AWS policy file and AWS
# resource-action targets (fuzz/).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, all targets)
#
# Only the stable toolchain exists on these machines, so instead of `cargo +nightly fuzz`
# (which adds -Zsanitizer=address) this builds the same cargo-fuzz crates with stable
# LLVM SanitizerCoverage flags: coverage-guided, with debug assertions and overflow checks,
# no ASan (safe Rust: no memory errors to find without `unsafe`). Corpora grow in
# <crate>/corpus/<target>/ (seeds committed); crashes land in <crate>/artifacts/<target>/
# and make this script fail. Keep every finding as a regression test beside the code.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECS="${1:-60}"
shift || true
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/fuzz}"
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 -Cdebug-assertions -Coverflow-checks"

declare -A CRATE=(
    [parse_frame]=dataplane/fuzz
    [policy_toml]=fuzz [suricata_rules]=fuzz [config_toml]=fuzz
    [aws_json]=fuzz [sigv4_verify]=fuzz
)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(parse_frame policy_toml suricata_rules config_toml aws_json sigv4_verify aws_policy_file aws_resources)

# An explicit --target keeps RUSTFLAGS off build scripts and proc macros (they would not
# link without the libFuzzer runtime).
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
for crate in dataplane/fuzz fuzz; do
    echo "fuzz: building $crate" >&2
    (cd "$ROOT/$crate" && cargo build --release --bins -q --target "$TRIPLE")
done

summary=()
failed=0
for t in "${targets[@]}"; do
    crate="${CRATE[$t]:?unknown target $t}"
    corpus="$ROOT/$crate/corpus/$t" artifacts="$ROOT/$crate/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    dict=()
    [ -f "$ROOT/$crate/dict/$t.dict" ] && dict=("-dict=$ROOT/$crate/dict/$t.dict")
    log="$CARGO_TARGET_DIR/$t.log"
    echo "fuzz: $t for ${SECS}s" >&2
    set +e
    "$CARGO_TARGET_DIR/$TRIPLE/release/$t" "$corpus" "${dict[@]}" -max_total_time="$SECS" \
        -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)
    findings=$(find "$artifacts" -type f | wc -l)
    summary+=("$t: rc=$rc execs=$execs cov=$cov corpus=$(ls "$corpus" | wc -l) findings=$findings")
    if [ $rc -ne 0 ] || [ "$findings" -gt 0 ]; then
        failed=1
        tail -40 "$log" >&2
    fi
done
printf '%s\n' "${summary[@]}"
exit $failed
