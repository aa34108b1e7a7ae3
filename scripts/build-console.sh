#!/usr/bin/env bash
# Builds the web console (console/, TypeScript) into console/dist, which cargo embeds into
# the appliance binary (mgmt/src/console.rs). Installs exactly the locked dependencies
# (npm ci) when they are missing or the lock file changed; idempotent. Needs Node.js >= 20.
#   scripts/build-console.sh          npm ci (if needed) + unit tests (vitest) + build
#   scripts/build-console.sh --no-test
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

ensure_node() {
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || ensure_packages nodejs npm
    local major
    major="$(node -p 'process.versions.node.split(".")[0]')"
    [ "$major" -ge 20 ] || die "Node.js >= 20 is needed to build the console (found $(node --version))"
}

ensure_node
CONSOLE="$FG_ROOT/console"
# npm ci only when node_modules was not installed from this exact lock file.
stamp="$CONSOLE/node_modules/.flowgate-lock.sha256"
want="$(sha256sum "$CONSOLE/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    log "console: npm ci"
    (cd "$CONSOLE" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in console/ failed"
    echo "$want" >"$stamp"
fi
if [ "${1:-}" != "--no-test" ]; then
    log "console: unit tests (vitest)"
    (cd "$CONSOLE" && npx vitest run --reporter=dot) || die "console unit tests failed"
fi
# Rebuild only when an input changed: a new dist/ (new mtimes) makes cargo rebuild the
# binary, which the lab scripts would otherwise pay for on every run.
inputs_hash() {
    (cd "$CONSOLE" && find src index.html package.json package-lock.json tsconfig.json vite.config.ts -type f -print0 \
        | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}
build_stamp="$CONSOLE/node_modules/.flowgate-build.sha256"
inputs="$(inputs_hash)"
if [ -f "$CONSOLE/dist/index.html" ] && [ "$(cat "$build_stamp" 2>/dev/null || true)" = "$inputs" ]; then
    log "console: dist/ is up to date"
    exit 0
fi
log "console: build (tsc + vite) -> console/dist"
out="$(cd "$CONSOLE" && npm run -s build 2>&1)" || { printf '%s\n' "$out" >&2; die "console build failed"; }
[ -f "$CONSOLE/dist/index.html" ] || die "console build produced no dist/index.html"
echo "$inputs" >"$build_stamp"
