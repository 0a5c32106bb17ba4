#!/usr/bin/env bash
# Builds the in-sandbox agent (agent/src, Rust std only) into agent/target/kiln-agent
# as a static x86_64 Linux binary. Idempotent: does nothing when the binary is
# newer than every source file. Usage: scripts/build-agent.sh [--force] [--fuzz]
#
# --fuzz builds the fuzz harness instead, agent/target/kiln-agent-fuzz: the same
# crate with --cfg kiln_fuzz (agent/src/fuzz.rs), which decodes frames from
# stdin and runs nothing; with overflow checks and debug assertions, so that
# arithmetic a fuzzer can push over the edge aborts instead of wrapping.
set -euo pipefail

force=0
fuzz=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --fuzz) fuzz=1 ;;
    *)
      echo "build-agent: unknown option $arg" >&2
      exit 2
      ;;
  esac
done

export PATH="$PATH:${HOME:-/root}/.cargo/bin"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/agent/src"
out="$root/agent/target/kiln-agent"
[[ $fuzz == 1 ]] && out="$root/agent/target/kiln-agent-fuzz"

if [[ $force == 0 && -x "$out" ]]; then
  # find prints any source newer than the binary; none means up to date.
  if [[ -z "$(find "$src" "$root/agent/Cargo.toml" -newer "$out" -print -quit)" ]]; then
    exit 0
  fi
fi

if ! command -v rustc >/dev/null 2>&1; then
  echo "build-agent: rustc not found (install a Rust toolchain to build the agent)" >&2
  exit 1
fi

mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
if [[ $fuzz == 1 ]]; then
  # panic=abort as in the agent: a panic is a crash (SIGABRT) that the driver sees.
  rustc --edition 2021 --crate-name kiln_agent --cfg kiln_fuzz \
    -C opt-level=1 -C debug-assertions=on -C overflow-checks=on -C panic=abort \
    -o "$tmp" "$src/main.rs"
  mv -f "$tmp" "$out"
  echo "build-agent: built $out" >&2
  exit 0
fi
# Static (crt-static) so the agent runs in images without a libc; panic=abort
# keeps it small and makes any bug a visible crash instead of a hung thread.
rustc --edition 2021 --crate-name kiln_agent \
  -C opt-level=3 -C lto=fat -C codegen-units=1 \
  -C target-feature=+crt-static -C panic=abort -C strip=symbols \
  --target x86_64-unknown-linux-gnu \
  -o "$tmp" "$src/main.rs"

if ldd "$tmp" 2>&1 | grep -q '=>'; then
  echo "build-agent: $tmp is dynamically linked" >&2
  exit 1
fi
mv -f "$tmp" "$out"
echo "build-agent: built $out ($(stat -c %s "$out") bytes)" >&2
