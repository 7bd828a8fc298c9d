#!/usr/bin/env bash
# The multi-call binary's user-visible contract: static linking, applet dispatch by name and
# by symlink, --list, --install, --help/--version everywhere, unknown applets, stub applets.
#   bash tests/integration/test_dispatch.sh BUILD_DIR      (BUILD_DIR/dstack; the binary's path works too)
# Output as harness.py's: PASS / FAIL / SKIP lines, then "test_dispatch.sh: N passed, N failed, N skipped".
#
# No command's output is piped into `grep -q` (or head): under pipefail, grep exiting at its first
# match kills the writer with SIGPIPE and the pipeline reads as false at random (this decided
# "sanitizer build" wrongly about one run in four). Output is captured first, then matched.
set -uo pipefail
TARGET=${1:?usage: test_dispatch.sh BUILD_DIR}
if [ -d "$TARGET" ]; then DSTACK=$(readlink -f "$TARGET/dstack"); else DSTACK=$(readlink -f "$TARGET"); fi
PASSED=0 FAILED=0 SKIPPED=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

summary() { echo "test_dispatch.sh: $PASSED passed, $FAILED failed, $SKIPPED skipped"; }
if [ ! -x "$DSTACK" ]; then
  echo "FAIL setup: dstack is built: $DSTACK is missing"; FAILED=1; summary; exit 1
fi

check() {  # description, then a command that must succeed
  local what=$1; shift
  if "$@" >"$TMP/out" 2>&1; then PASSED=$((PASSED + 1)); echo "PASS $what"
  else FAILED=$((FAILED + 1)); echo "FAIL $what"; head -n 20 "$TMP/out" | sed 's/^/    /'; fi
}

run() {  # expected-exit-code command... ; stdout+stderr go to $TMP/run
  local expected=$1; shift
  "$@" >"$TMP/run" 2>&1
  local rc=$?
  [ "$rc" -eq "$expected" ] || { echo "exit $rc, expected $expected: $*"; cat "$TMP/run"; return 1; }
}

output_has() {  # expected-exit-code extended-regex command... : the exit code, and a line matching
  local expected=$1 pattern=$2; shift 2
  run "$expected" "$@" || return 1
  grep -Eq -- "$pattern" "$TMP/run" || { echo "no line matching /$pattern/ in the output of: $*"; cat "$TMP/run"; return 1; }
}

output_line() {  # expected-exit-code exact-line command... : the exit code, and this exact line
  local expected=$1 line=$2; shift 2
  run "$expected" "$@" || return 1
  grep -Fqx -- "$line" "$TMP/run" || { echo "no line '$line' in the output of: $*"; cat "$TMP/run"; return 1; }
}

stdout_is() {  # expected-stdout command... : exit 0 and exactly this on stdout
  local expected=$1; shift
  local out rc
  out=$("$@" 2>"$TMP/stderr"); rc=$?
  [ "$rc" -eq 0 ] && [ "$out" = "$expected" ] || { echo "exit $rc, stdout '$out', expected '$expected': $*"; cat "$TMP/stderr"; return 1; }
}

APPLETS=(agent gateway kms verify vmm)
VERSION=$("$DSTACK" --version)

# Sanitizer builds cannot be static; only they may skip this check.
LDD=$(ldd "$DSTACK" 2>&1 || true)  # a static binary: "not a dynamic executable", exit 1
if grep -q libasan <<<"$LDD"; then
  SKIPPED=$((SKIPPED + 1)); echo "SKIP binary is statically linked: sanitizer builds are dynamic (it links libasan)"
else
  check "binary is statically linked" output_has 0 'statically linked' file -b "$DSTACK"
fi

check "--list names the five applets" stdout_is "$(printf '%s\n' "${APPLETS[@]}")" "$DSTACK" --list
check "--version prints the version line" output_has 0 '^dstack [0-9]+\.[0-9]+\.[0-9]+ \(git [^)]+\)$' "$DSTACK" --version
check "--help lists the applets" output_has 0 'verify' "$DSTACK" --help
check "no arguments prints usage and exits 2" run 2 "$DSTACK"
check "unknown applet exits 2" run 2 "$DSTACK" nosuch
check "unknown applet error names the applets" \
  output_line 2 "dstack: unknown applet 'nosuch' (applets: agent, gateway, kms, verify, vmm)" "$DSTACK" nosuch

for applet in "${APPLETS[@]}"; do
  check "dstack $applet --help" output_has 0 "^usage: dstack $applet" "$DSTACK" "$applet" --help
  check "dstack $applet --version matches the binary" stdout_is "$VERSION" "$DSTACK" "$applet" --version
done

# Applets whose issue has not landed must say so and fail, never pretend.
for applet in vmm; do
  check "dstack $applet without --help says not implemented, exit 2" output_has 2 'not implemented yet' "$DSTACK" "$applet"
done
# The KMS and the gateway without arguments: a usage error naming their subcommands (they never
# start serving unasked).
check "dstack kms without arguments: exit 2 naming its subcommands" output_has 2 'subcommands: bootstrap' "$DSTACK" kms
check "dstack gateway without arguments: exit 2 naming its subcommands" output_has 2 'subcommands: certbot, register, serve' "$DSTACK" gateway
# The agent is implemented: off a TDX guest it fails and says how to run the simulator.
check "dstack agent off a TDX guest fails pointing to --simulator" output_has 1 'agent --simulator DIR' "$DSTACK" agent

mkdir -p "$TMP/bin"
check "--install creates a symlink per applet" run 0 "$DSTACK" --install "$TMP/bin"
for applet in "${APPLETS[@]}"; do
  check "symlink $applet points at the binary" bash -c "[ \"\$(readlink -f '$TMP/bin/$applet')\" = '$DSTACK' ]"
done
check "a symlink named verify runs the verify applet" output_has 0 '^usage: dstack verify' "$TMP/bin/verify" --help
ln -s "$DSTACK" "$TMP/dstack-kms"
check "a symlink named dstack-kms runs the kms applet" output_has 0 '^usage: dstack kms' "$TMP/dstack-kms" --help
ln -s "$DSTACK" "$TMP/frobnicate"
check "a symlink with an unknown name exits 2" run 2 "$TMP/frobnicate"
check "--install refuses to overwrite without --force" run 1 "$DSTACK" --install "$TMP/bin"
check "--install --force replaces existing links" bash -c "rm '$TMP/bin/kms' && echo old > '$TMP/bin/kms' && '$DSTACK' --install '$TMP/bin' --force && [ -L '$TMP/bin/kms' ]"
check "--install into a missing directory exits 2" run 2 "$DSTACK" --install "$TMP/missing"
check "--install without a directory exits 2" run 2 "$DSTACK" --install

summary
[ "$FAILED" -eq 0 ]
