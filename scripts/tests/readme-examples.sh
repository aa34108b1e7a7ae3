#!/usr/bin/env bash
# Executes the README's operator examples literally against the lab: every ```sh block that
# follows a `<!-- readme-test -->` line in README.md, in order, in one bash shell with
# `set -euo pipefail`, from the repository root (so the README's own
# `eval "$(scripts/lab.sh up)"` brings the lab up). The blocks are read from README.md
# itself, so what is tested is exactly what the README says; a README that loses its marked
# blocks or its lab start fails here instead of silently testing less.
# Run under `flock /tmp/flowgate-lab.lock`; needs root (the lab) and the .venv's AWS CLI.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
cd "$FG_ROOT"
script="$(mktemp /tmp/flowgate-readme.XXXXXX.sh)"
trap 'rm -f "$script"; scripts/lab.sh down >/dev/null 2>&1 || true' EXIT
awk '
    /^<!-- readme-test -->$/ { armed = 1; next }
    armed && /^```sh$/       { inside = 1; armed = 0; blocks++; print "# --- README block " blocks; next }
    inside && /^```$/        { inside = 0; next }
    inside                   { print }
    END { if (inside) exit 2 }
' README.md >"$script" || die "README.md: a marked block is not closed"

blocks="$(grep -c '^# --- README block' "$script" || true)"
[ "$blocks" -ge 2 ] || die "README.md: expected the flowgatectl and AWS CLI blocks marked <!-- readme-test -->, found $blocks"
grep -q '^eval "$(scripts/lab.sh up)"' "$script" || die 'README.md: the first marked block must start the lab with eval "$(scripts/lab.sh up)"'
grep -q '^flowgatectl capture' "$script" || die "README.md: the marked blocks lost the flowgatectl examples"
grep -q '^aws network-firewall' "$script" || die "README.md: the marked blocks lost the AWS CLI examples"

# The README's reader has the AWS CLI installed (pip install awscli): here it is the .venv's.
[ -x "$FG_ROOT/.venv/bin/aws" ] || die "no AWS CLI at $FG_ROOT/.venv/bin/aws"
# Nothing of the caller's environment may help the README: only what the README exports.
unset FLOWGATE_API FLOWGATE_ACCESS_KEY_ID FLOWGATE_SECRET_ACCESS_KEY FLOWGATE_REGION \
    FLOWGATE_CA_FILE FLOWGATECTL FIREWALL_ARN ID \
    AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_DEFAULT_REGION AWS_REGION AWS_PROFILE
PATH="$FG_ROOT/.venv/bin:$PATH" bash -euo pipefail -x "$script" \
    || die "a README example failed (the trace above shows which)"
log "README operator examples passed ($blocks blocks)"
