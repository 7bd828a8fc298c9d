#!/usr/bin/env python3
"""Differential test of `dstack verify` against dcap-qvl as published on npm.

    test_dcap_qvl.py DSTACK_BINARY [--impl js,wasm] [--count N] [--show-diffs] [--oracles-only]

Both verifiers see the same quotes, collateral and pinned time:
  * the real vectors (TDX v4, SGX v3, TDX v5 "outdated"), each with its collateral;
  * a fixed, seeded set of single-byte mutations of the real TDX quote (anywhere in its 5006
    bytes, trailing padding included), plus a few aimed at the length and type fields that random
    mutation rarely hits.
For every case the DCAP-level decision (accept/reject, before our stricter policy) must agree and,
when both accept, so must the TCB status and the advisory IDs. A disagreement passes only when a
row of KNOWN_DIFFERENCES explains it (a predicate on where the byte is and who decided what, and
the reason); any other disagreement fails. The last line is "dcap-qvl-compat: N passed, M failed".

The oracles: @phala/dcap-qvl (the JavaScript port) and @phala/dcap-qvl-web (the Rust crate built to
WebAssembly), run by dcap-qvl-oracle.mjs in one node process per oracle. --oracles-only compares
the two packages with each other (no dstack binary needed) and lists where they differ.
Vectors come from $DSTACK_VECTORS (default: ../shared/vectors seen from the project root).
"""

import argparse
import concurrent.futures
import dataclasses
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from typing import Callable, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
VECTORS = os.environ.get("DSTACK_VECTORS", os.path.join(ROOT, "..", "shared", "vectors"))
ORACLE = os.path.join(HERE, "dcap-qvl-oracle.mjs")

SEED = 0xDCA9_2025
MUTATIONS = 1000
TDX_NOW = 1752919234

# (quote, collateral, now, what each oracle is expected to say). Pinning the oracles' own answers
# makes a changed package (or a broken oracle script) fail here rather than pass silently.
REAL_VECTORS = [
    ("dcap-qvl/tdx_quote", "dcap-qvl/tdx_quote_collateral.json", TDX_NOW, {
        "js": ("UpToDate", []),
        "wasm": ("UpToDate", []),
    }),
    ("dcap-qvl/sgx_quote", "dcap-qvl/sgx_quote_collateral.json", 1752919277, {
        "js": ("ConfigurationAndSWHardeningNeeded", ["INTEL-SA-00289", "INTEL-SA-00615"]),
        "wasm": ("ConfigurationAndSWHardeningNeeded", ["INTEL-SA-00289", "INTEL-SA-00615"]),
    }),
    # The Rust crate says "No matching TCB level found" (spec/verifier.md §3.6); the JS port agrees;
    # the wasm package (an older build of the crate) cannot decode this v5 quote at all.
    ("dcap-qvl/tdx_quote_outdated", "dcap-qvl/tdx_quote_outdated_collateral.json", 1774003274, {
        "js": ("reject", "No matching TCB level found"),
        "wasm": ("reject", "Failed to decode quote"),
    }),
]


# ---------------------------------------------------------------------------------------------
# Where a byte sits in the real TDX v4 quote (spec/verifier.md §1), computed from the quote itself.

def quote_regions(quote: bytes):
    """Returns [(start, end, name)] covering the whole quote, for a v4 TDX quote."""
    version, key_type, tee_type = struct.unpack_from("<HHI", quote, 0)
    if version != 4 or tee_type != 0x81:
        raise ValueError("the mutation base must be a v4 TDX quote")
    regions = [(0, 48, "header"), (48, 632, "td_report")]
    pos = 632
    (auth_len,) = struct.unpack_from("<I", quote, pos)

    def take(size, name):
        nonlocal pos
        regions.append((pos, pos + size, name))
        pos += size

    take(4, "auth_data_len")
    auth_end = pos + auth_len
    take(64, "quote_signature")
    take(64, "attestation_key")
    take(2, "outer_cert_type")
    take(4, "outer_cert_len")
    take(384, "qe_report")
    take(64, "qe_report_signature")
    (qe_auth_len,) = struct.unpack_from("<H", quote, pos)
    take(2, "qe_auth_len")
    take(qe_auth_len, "qe_auth_data")
    take(2, "inner_cert_type")
    (inner_len,) = struct.unpack_from("<I", quote, pos)
    take(4, "inner_cert_len")
    chain_start, chain_end = pos, pos + inner_len
    # Name the PEM blocks: the chain is leaf, PCK platform CA, then a copy of the root.
    names = ["pck_leaf_pem", "pck_ca_pem", "root_copy_pem"]
    cursor = chain_start
    blocks = list(re.finditer(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
                              quote[chain_start:chain_end], re.S))
    for index, block in enumerate(blocks):
        start, end = chain_start + block.start(), chain_start + block.end()
        if start > cursor:
            regions.append((cursor, start, "pem_separator"))
        regions.append((start, end, names[index] if index < len(names) else "pem_extra"))
        cursor = end
    if chain_end > cursor:
        regions.append((cursor, chain_end, "pem_tail"))
    if auth_end != chain_end:
        raise ValueError("unexpected auth data layout")
    if len(quote) > auth_end:
        regions.append((auth_end, len(quote), "trailing_bytes"))
    return regions


def region_of(regions, offset):
    for start, end, name in regions:
        if start <= offset < end:
            return name, offset - start
    return "beyond_end", 0


# ---------------------------------------------------------------------------------------------
# Known, deliberate or understood differences.

@dataclasses.dataclass
class Case:
    name: str
    offset: Optional[int]      # None for the unmutated real vectors
    region: str
    region_offset: int
    old: Optional[int]
    new: Optional[int]


@dataclasses.dataclass
class Outcome:
    ok: bool
    status: Optional[str]
    advisory_ids: list
    error: Optional[str]


@dataclasses.dataclass
class Difference:
    name: str
    impls: set                 # which oracles the row covers
    when: Callable             # (case, ours: Outcome, theirs: Outcome) -> bool
    reason: str


def is_base64_char(byte):
    return byte is not None and (chr(byte).isalnum() and byte < 128 or byte in b"+/=")


KNOWN_DIFFERENCES = [
    Difference(
        "outer certification data type must be 6", {"js", "wasm"},
        lambda c, ours, theirs: c.region == "outer_cert_type" and not ours.ok and theirs.ok,
        "v4/v5 quotes carry QE report certification data (type 6); dcap-qvl decodes the body as "
        "type 6 whatever the type field says, we reject any other type (spec/verifier.md §1.4, §7.2)"),
    Difference(
        "length fields must cover their contents exactly", {"js", "wasm"},
        lambda c, ours, theirs: c.region in ("auth_data_len", "outer_cert_len", "inner_cert_len", "qe_auth_len")
        and not ours.ok and theirs.ok and "unexpected bytes after its last field" in (ours.error or ""),
        "a shorter inner certification data length or a longer signature data length leaves slack "
        "inside the length-prefixed structure; dcap-qvl ignores it (a shortened PEM chain still holds "
        "the leaf and CA), we refuse unaccounted bytes inside the signature data (bytes after the "
        "whole quote stay ignored by both, spec/verifier.md §1.1)"),
    Difference(
        "JS port: lenient base64 in the leaf and CA PEM blocks", {"js"},
        lambda c, ours, theirs: c.region in ("pck_leaf_pem", "pck_ca_pem") and not ours.ok and theirs.ok,
        "node's base64 decoder stops at '=' padding and ignores what follows inside the block, so "
        "the JS port decodes the unchanged certificate; we (like the Rust crate's PEM reader) reject "
        "a block whose base64 is malformed"),
    Difference(
        "JS port: malformed root copy dropped from the PEM chain", {"js"},
        lambda c, ours, theirs: c.region == "root_copy_pem" and not ours.ok and theirs.ok,
        "the quote's PCK chain ends with a copy of the Intel root; the JS port's PEM scanner skips "
        "a block that is not clean base64 and builds the chain from the rest plus its pinned root, "
        "while we (like the Rust crate) refuse a chain with an undecodable PEM block"),
    Difference(
        "JS port: root copy parsed and its self-signature checked", {"js"},
        lambda c, ours, theirs: c.region == "root_copy_pem" and ours.ok and not theirs.ok,
        "a root copy that still decodes is parsed and verified by the JS port (an ASN.1 error or "
        "'intermediate signature invalid'); we (like the Rust crate, whose path building stops at "
        "the pinned anchor) never use the supplied copy of the root"),
    Difference(
        "wasm build: root copy in the chain ignored", {"wasm"},
        lambda c, ours, theirs: c.region == "root_copy_pem" and not ours.ok and theirs.ok,
        "the wasm build never parses the supplied copy of the root as X.509 (webpki stops at the "
        "pinned anchor) and its PEM reader tolerates a damaged END line of the last block; we parse "
        "every certificate of the chain we are given and reject malformed PEM"),
]

# Differences between the two npm packages themselves, reported (not failed) by --oracles-only
# and after the main comparison.
ORACLE_DIFFERENCES = [
    ("root_copy_pem", "the JS port drops a PEM block that is not clean base64 and parses/verifies "
     "a decodable root copy; the wasm build rejects undecodable PEM and ignores a decodable copy"),
    ("pck_leaf_pem/pck_ca_pem", "junk after the base64 padding: the JS port's decoder ignores it, "
     "the wasm build rejects the block"),
]


def explain(case, impl, ours, theirs):
    for row in KNOWN_DIFFERENCES:
        if impl in row.impls and row.when(case, ours, theirs):
            return row
    return None


def same(ours: Outcome, theirs: Outcome):
    if ours.ok != theirs.ok:
        return False
    if not ours.ok:
        return True
    return ours.status == theirs.status and sorted(ours.advisory_ids) == sorted(theirs.advisory_ids)


def describe(outcome: Outcome):
    if outcome.ok:
        return f"accept {outcome.status} {outcome.advisory_ids}"
    return f"reject ({outcome.error})"


# ---------------------------------------------------------------------------------------------
# Running the verifiers.

def run_oracle(impl, collateral, now, files):
    """One node process for all files; returns {file: Outcome}."""
    command = ["node", ORACLE, "--impl", impl, "--collateral", collateral, "--now", str(now), *files]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"oracle {impl} exited {proc.returncode}: {proc.stderr.strip()}")
    results = {}
    for line in proc.stdout.splitlines():
        record = json.loads(line)
        results[record["file"]] = Outcome(record["ok"], record["status"], record["advisory_ids"], record["error"])
    missing = [f for f in files if f not in results]
    if missing:
        raise RuntimeError(f"oracle {impl} gave no answer for {missing[:3]}")
    return results


def run_ours(binary, collateral, now, quote_file):
    command = [binary, "verify", "--json", "--collateral", collateral, "--now", str(now), quote_file]
    proc = subprocess.run(command, capture_output=True, timeout=60)
    stdout = proc.stdout.decode("utf-8", errors="replace")
    if proc.returncode not in (0, 1):
        stderr = proc.stderr.decode("utf-8", errors="replace")
        raise RuntimeError(f"dstack verify exited {proc.returncode} on {quote_file}: "
                           f"{(stderr or stdout).strip()[:300]}")
    try:
        proc.stdout.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RuntimeError(f"dstack verify printed invalid UTF-8 (not JSON) at byte {e.start}: "
                           f"{proc.stdout[max(0, e.start - 80):e.start + 20]!r}")
    try:
        dcap = json.loads(stdout)["dcap"]
        return Outcome(bool(dcap["verified"]), dcap.get("status"), list(dcap.get("advisory_ids") or []),
                       dcap.get("error"))
    except (ValueError, KeyError, TypeError) as e:
        raise RuntimeError(f"dstack verify printed no usable JSON for {quote_file} ({e}): {stdout[:300]}")


def run_ours_many(binary, collateral, now, files):
    workers = max(2, os.cpu_count() or 2)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {f: pool.submit(run_ours, binary, collateral, now, f) for f in files}
        results = {}
        for f, future in futures.items():
            try:
                results[f] = future.result()
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                results[f] = e
        return results


# ---------------------------------------------------------------------------------------------

def vector(path):
    return os.path.join(VECTORS, path)


def make_mutations(quote, count):
    """Seeded single-byte mutations anywhere in the quote, plus aimed ones on length/type fields."""
    rng = random.Random(SEED)
    chosen, mutations = set(), []
    while len(mutations) < count:
        offset = rng.randrange(len(quote))
        new = quote[offset] ^ rng.randrange(1, 256)
        if (offset, new) not in chosen:
            chosen.add((offset, new))
            mutations.append((offset, new))
    regions = quote_regions(quote)
    aimed = ("auth_data_len", "outer_cert_type", "outer_cert_len", "qe_auth_len", "inner_cert_type",
             "inner_cert_len")
    for start, end, name in regions:
        if name in aimed:
            for offset in range(start, end):
                for new in ((quote[offset] + 1) & 0xFF, (quote[offset] - 1) & 0xFF):
                    if (offset, new) not in chosen:
                        chosen.add((offset, new))
                        mutations.append((offset, new))
    return regions, mutations


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dstack", nargs="?", help="path of the dstack binary")
    parser.add_argument("--impl", default="js,wasm", help="oracles to compare with (js, wasm or js,wasm)")
    parser.add_argument("--count", type=int, default=MUTATIONS, help="random mutations (default 1000)")
    parser.add_argument("--show-diffs", action="store_true", help="list every difference, explained or not")
    parser.add_argument("--oracles-only", action="store_true", help="compare the npm packages with each other")
    args = parser.parse_args()
    impls = [i for i in args.impl.split(",") if i]
    if any(i not in ("js", "wasm") for i in impls) or not impls:
        parser.error("--impl takes js, wasm or js,wasm")
    if not args.oracles_only and not args.dstack:
        parser.error("the dstack binary is required (or --oracles-only)")

    if shutil.which("node") is None or not os.path.isdir(os.path.join(HERE, "node_modules", "@phala")):
        print("SKIP dcap-qvl-compat: node or the npm packages are missing (run scripts/setup)")
        print("dcap-qvl-compat: 0 passed, 0 failed, 1 skipped")
        return 0
    base_quote_path = vector("dcap-qvl/tdx_quote")
    if not os.path.exists(base_quote_path):
        print(f"SKIP dcap-qvl-compat: vectors not found in {VECTORS}")
        print("dcap-qvl-compat: 0 passed, 0 failed, 1 skipped")
        return 0
    if args.dstack and not os.access(args.dstack, os.X_OK):
        print(f"FAIL dcap-qvl-compat: {args.dstack} is not an executable")
        print("dcap-qvl-compat: 0 passed, 1 failed")
        return 1

    passed = failed = 0
    explained_counts = {}

    def record(label, ok, message=""):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            print(f"FAIL {label}: {message}")

    # 1. The real vectors: the oracles must say what they are known to say, and we must agree.
    for quote_rel, collateral_rel, now, expected in REAL_VECTORS:
        quote_file, collateral = vector(quote_rel), vector(collateral_rel)
        theirs_by_impl = {impl: run_oracle(impl, collateral, now, [quote_file])[quote_file] for impl in impls}
        for impl, theirs in theirs_by_impl.items():
            want_status, want_detail = expected[impl]
            if want_status == "reject":
                good = not theirs.ok and want_detail in (theirs.error or "")
            else:
                good = theirs.ok and theirs.status == want_status and theirs.advisory_ids == want_detail
            record(f"{quote_rel} oracle {impl}", good,
                   f"expected {want_status} {want_detail}, got {describe(theirs)}")
        if args.oracles_only:
            continue
        try:
            ours = run_ours(args.dstack, collateral, now, quote_file)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            record(f"{quote_rel} ours", False, str(e))
            continue
        case = Case(quote_rel, None, "unmutated", 0, None, None)
        for impl, theirs in theirs_by_impl.items():
            if same(ours, theirs):
                record(f"{quote_rel} vs {impl}", True)
                continue
            row = explain(case, impl, ours, theirs)
            record(f"{quote_rel} vs {impl}", row is not None,
                   f"ours {describe(ours)}, dcap-qvl {impl} {describe(theirs)}")

    # 2. Mutations of the real TDX quote.
    base_quote = open(base_quote_path, "rb").read()
    collateral = vector("dcap-qvl/tdx_quote_collateral.json")
    regions, mutations = make_mutations(base_quote, args.count)
    with tempfile.TemporaryDirectory(prefix="dcap-qvl-compat-") as tmp:
        files = []
        for index, (offset, new) in enumerate(mutations):
            mutated = bytearray(base_quote)
            mutated[offset] = new
            path = os.path.join(tmp, f"m{index:04d}-{offset}-{new:02x}")
            with open(path, "wb") as out:
                out.write(mutated)
            files.append(path)
        theirs_by_impl = {impl: run_oracle(impl, collateral, TDX_NOW, files) for impl in impls}
        ours_by_file = {} if args.oracles_only else run_ours_many(args.dstack, collateral, TDX_NOW, files)

        oracle_diffs = {}
        for (offset, new), path in zip(mutations, files):
            region, region_offset = region_of(regions, offset)
            case = Case(os.path.basename(path), offset, region, region_offset, base_quote[offset], new)
            if len(impls) == 2:
                js, wasm = theirs_by_impl["js"][path], theirs_by_impl["wasm"][path]
                if not same(js, wasm):
                    oracle_diffs.setdefault((region, js.ok, wasm.ok), []).append(case)
            if args.oracles_only:
                continue
            label = f"{case.name} [{region}+{region_offset} {base_quote[offset]:02x}->{new:02x}]"
            ours = ours_by_file[path]
            if isinstance(ours, Exception):
                record(label, False, str(ours))
                continue
            problems = []
            for impl in impls:
                theirs = theirs_by_impl[impl][path]
                if same(ours, theirs):
                    continue
                row = explain(case, impl, ours, theirs)
                if row is None:
                    problems.append(f"{impl}: ours {describe(ours)}, theirs {describe(theirs)}")
                else:
                    explained_counts[(impl, row.name)] = explained_counts.get((impl, row.name), 0) + 1
                if args.show_diffs:
                    print(f"DIFF {case.name} [{region}+{region_offset} {base_quote[offset]:02x}->{new:02x}] "
                          f"{impl}: ours {describe(ours)}, theirs {describe(theirs)}"
                          f" -> {row.name if row else 'UNEXPLAINED'}")
            record(label, not problems, "; ".join(problems))

    if oracle_diffs:
        total = sum(len(v) for v in oracle_diffs.values())
        print(f"INFO the npm packages disagree with each other on {total} of {len(mutations)} mutations:")
        for (region, js_ok, wasm_ok), cases in sorted(oracle_diffs.items()):
            print(f"INFO   {len(cases):4d} in {region}: js {'accepts' if js_ok else 'rejects'}, "
                  f"wasm {'accepts' if wasm_ok else 'rejects'}")
        for region, why in ORACLE_DIFFERENCES:
            print(f"INFO   ({region}: {why})")
    for (impl, name), count in sorted(explained_counts.items()):
        print(f"INFO explained vs {impl}: {count:4d} x {name}")
    print(f"dcap-qvl-compat: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
