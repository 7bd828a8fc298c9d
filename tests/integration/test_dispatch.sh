#!/usr/bin/env bash
# The multi-call binary's user-visible contract: static linking, applet dispatch by name and
# by symlink, --list, --install, --help/--version everywhere, unknown applets, stub applets.
#   tests/integration/test_dispatch.sh build/dstack
set -uo pipefail
DSTACK=$(readlink -f "${1:?usage: test_dispatch.sh PATH/TO/dstack}")
PASSED=0 FAILED=0 SKIPPED=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

check() {  # description, then a command that must succeed
  local what=$1; shift
  if "$@" >"$TMP/out" 2>&1; then PASSED=$((PASSED + 1)); echo "PASS $what"
  else FAILED=$((FAILED + 1)); echo "FAIL $what"; sed 's/^/    /' "$TMP/out" | head -20; fi
}

run() {  # expected-exit-code command... ; stdout+stderr go to $TMP/run
  local expected=$1; shift
  "$@" >"$TMP/run" 2>&1
  local rc=$?
  [ "$rc" -eq "$expected" ] || { echo "exit $rc, expected $expected: $*"; cat "$TMP/run"; return 1; }
}

APPLETS=(agent gateway kms verify vmm)
VERSION=$("$DSTACK" --version)

# Sanitizer builds cannot be static; only they may skip this check.
if ldd "$DSTACK" 2>/dev/null | grep -q libasan; then
  SKIPPED=$((SKIPPED + 1)); echo "SKIP binary is statically linked (sanitizer builds are dynamic)"
else
  check "binary is statically linked" bash -c "file -b '$DSTACK' | grep -q 'statically linked'"
fi

check "--list names the five applets" bash -c "[ \"\$('$DSTACK' --list | tr '\n' ' ')\" = '${APPLETS[*]} ' ]"
check "--version prints the version line" bash -c "'$DSTACK' --version | grep -Eq '^dstack [0-9]+\.[0-9]+\.[0-9]+ \(git [^)]+\)$'"
check "--help lists the applets" bash -c "'$DSTACK' --help | grep -q 'verify'"
check "no arguments prints usage and exits 2" run 2 "$DSTACK"
check "unknown applet exits 2" run 2 "$DSTACK" nosuch
check "unknown applet error names the applets" bash -c "'$DSTACK' nosuch 2>&1 | grep -qx \"dstack: unknown applet 'nosuch' (applets: agent, gateway, kms, verify, vmm)\""

for applet in "${APPLETS[@]}"; do
  check "dstack $applet --help" bash -c "'$DSTACK' $applet --help | grep -q '^usage: dstack $applet'"
  check "dstack $applet --version matches the binary" bash -c "[ \"\$('$DSTACK' $applet --version)\" = '$VERSION' ]"
done

# Applets whose issue has not landed must say so and fail, never pretend.
for applet in agent gateway kms vmm; do
  check "dstack $applet without --help says not implemented, exit 2" \
    bash -c "out=\$('$DSTACK' $applet 2>&1); rc=\$?; [ \$rc -eq 2 ] && grep -q 'not implemented yet' <<<\"\$out\""
done

mkdir -p "$TMP/bin"
check "--install creates a symlink per applet" run 0 "$DSTACK" --install "$TMP/bin"
for applet in "${APPLETS[@]}"; do
  check "symlink $applet points at the binary" bash -c "[ \"\$(readlink -f '$TMP/bin/$applet')\" = '$DSTACK' ]"
done
check "a symlink named verify runs the verify applet" bash -c "'$TMP/bin/verify' --help | grep -q '^usage: dstack verify'"
check "a symlink named dstack-kms runs the kms applet" bash -c "ln -s '$DSTACK' '$TMP/dstack-kms' && '$TMP/dstack-kms' --help | grep -q '^usage: dstack kms'"
check "a symlink with an unknown name exits 2" bash -c "ln -s '$DSTACK' '$TMP/frobnicate'; '$TMP/frobnicate'; [ \$? -eq 2 ]"
check "--install refuses to overwrite without --force" run 1 "$DSTACK" --install "$TMP/bin"
check "--install --force replaces existing links" bash -c "rm '$TMP/bin/kms' && echo old > '$TMP/bin/kms' && '$DSTACK' --install '$TMP/bin' --force && [ -L '$TMP/bin/kms' ]"
check "--install into a missing directory exits 2" run 2 "$DSTACK" --install "$TMP/missing"
check "--install without a directory exits 2" run 2 "$DSTACK" --install

echo "integration-dispatch: $PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" -eq 0 ]
