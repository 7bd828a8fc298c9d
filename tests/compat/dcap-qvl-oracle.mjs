#!/usr/bin/env node
// Verifies DCAP quotes with the published dcap-qvl npm packages, as an independent oracle for
// `dstack verify`. One process verifies many quotes so that a thousand mutated quotes cost
// seconds, not a thousand node start-ups.
//
//   node dcap-qvl-oracle.mjs --collateral FILE --now UNIXSECS [--impl js|wasm] [--root-ca DER] QUOTE...
//     prints one JSON line per quote:
//     {"file":..., "ok":bool, "status":str|null, "advisory_ids":[...], "error":str|null}
//   node dcap-qvl-oracle.mjs --bench SECONDS --collateral FILE --now UNIXSECS [--impl js|wasm] QUOTE
//     times the first verification in the process (cold) and then repeats it for SECONDS,
//     printing one JSON line: {"impl","load_ms","cold_ms","iterations","quotes_per_s","max_rss_kb",...}
//
// --impl js   = @phala/dcap-qvl (the JavaScript port)
// --impl wasm = @phala/dcap-qvl-web (the Rust crate compiled to WebAssembly)
// The collateral file is dcap-qvl's QuoteCollateralV3 JSON (hex byte fields, PEM chains); both
// packages take that object as parsed. Exit status: 0 when every quote was processed (accepted or
// not), 2 on a usage error or unreadable input.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';

const require = createRequire(import.meta.url);

function usage(message) {
  process.stderr.write(`dcap-qvl-oracle: ${message}\n` +
    'usage: dcap-qvl-oracle.mjs --collateral FILE --now UNIXSECS [--impl js|wasm] [--root-ca DER] ' +
    '[--bench SECONDS] QUOTE...\n');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { impl: 'js', quotes: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--collateral') opts.collateral = value();
    else if (arg === '--now') opts.now = value();
    else if (arg === '--impl') opts.impl = value();
    else if (arg === '--root-ca') opts.rootCa = value();
    else if (arg === '--bench') opts.bench = value();
    else if (arg.startsWith('--')) usage(`unknown option ${arg}`);
    else opts.quotes.push(arg);
  }
  if (!opts.collateral) usage('--collateral is required');
  if (opts.now === undefined || !/^[0-9]+$/.test(opts.now)) usage('--now must be Unix seconds');
  if (!['js', 'wasm'].includes(opts.impl)) usage('--impl must be js or wasm');
  if (opts.quotes.length === 0) usage('no quote file given');
  if (opts.bench !== undefined) {
    opts.benchSeconds = Number(opts.bench);
    if (!(opts.benchSeconds > 0)) usage('--bench needs a positive number of seconds');
    if (opts.quotes.length !== 1) usage('--bench takes exactly one quote');
  }
  return opts;
}

function readOrDie(file, what) {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    usage(`cannot read ${what} ${file}: ${e.message}`);
  }
}

// The JS port throws Errors chained through `cause`; the wasm build throws the Rust error's
// top-level message as a string. Both are flattened to one line.
function errorText(e) {
  if (e === null || e === undefined) return String(e);
  if (typeof e === 'string') return e;
  const parts = [];
  for (let cur = e, depth = 0; cur && depth < 8; cur = cur.cause, depth++) {
    parts.push(cur.message !== undefined ? String(cur.message) : String(cur));
  }
  return parts.join(': ');
}

// Returns a function (quoteBytes) -> {status, advisory_ids} that throws on rejection.
async function loadVerifier(impl, collateral, nowSecs, rootCaDer) {
  if (impl === 'js') {
    const qvl = require('@phala/dcap-qvl');
    const verifier = rootCaDer ? qvl.QuoteVerifier.newWithRootCa(rootCaDer) : qvl.QuoteVerifier.newProd();
    return (quote) => verifier.verify(quote, collateral, nowSecs);
  }
  if (rootCaDer) usage('--root-ca is not supported by @phala/dcap-qvl-web (its root is built in)');
  const entry = require.resolve('@phala/dcap-qvl-web');
  const wasmModule = new WebAssembly.Module(fs.readFileSync(path.join(path.dirname(entry), 'dcap-qvl-web_bg.wasm')));
  // A Rust panic inside the wasm build (e.g. a 4 GiB length field) traps with "unreachable" and
  // may leave the instance's allocator inconsistent, so a trap costs the instance: the next quote
  // gets a fresh one (a new copy of the glue module, via a distinct import URL).
  let generation = 0;
  let web = null;
  const instantiate = async () => {
    web = await import(`${pathToFileURL(entry).href}?instance=${generation++}`);
    web.initSync({ module: wasmModule });
  };
  await instantiate();
  const now = BigInt(nowSecs);
  const verify = (quote) => web.js_verify(new Uint8Array(quote.buffer, quote.byteOffset, quote.length), collateral, now);
  verify.afterError = async (e) => {
    if (e instanceof WebAssembly.RuntimeError) await instantiate();
  };
  return verify;
}

async function verifyOne(verify, file, quote) {
  try {
    const report = verify(quote);
    return {
      file, ok: true, status: report.status ?? null,
      advisory_ids: Array.from(report.advisory_ids ?? []), error: null,
    };
  } catch (e) {
    if (verify.afterError) await verify.afterError(e);
    const trap = e instanceof WebAssembly.RuntimeError ? 'wasm trap: ' : '';
    return { file, ok: false, status: null, advisory_ids: [], error: trap + errorText(e) };
  }
}

// VmHWM, not getrusage's maxRSS: Linux carries the latter across exec from the parent.
function peakRssKib() {
  try {
    const match = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (match) return Number(match[1]);
  } catch (e) {
    // not Linux: fall through
  }
  return process.resourceUsage().maxRSS;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  let collateral;
  try {
    collateral = JSON.parse(readOrDie(opts.collateral, 'collateral').toString('utf8'));
  } catch (e) {
    usage(`collateral ${opts.collateral} is not JSON: ${e.message}`);
  }
  const nowSecs = Number(opts.now);
  const rootCaDer = opts.rootCa ? readOrDie(opts.rootCa, 'root CA') : undefined;

  const loadStart = performance.now();
  const verify = await loadVerifier(opts.impl, collateral, nowSecs, rootCaDer);
  const loadMs = performance.now() - loadStart;

  if (opts.benchSeconds !== undefined) {
    const quote = readOrDie(opts.quotes[0], 'quote');
    const coldStart = performance.now();
    const first = await verifyOne(verify, opts.quotes[0], quote);
    const coldMs = performance.now() - coldStart;
    let iterations = 0;
    const start = performance.now();
    const deadline = start + opts.benchSeconds * 1000;
    let now = start;
    while (now < deadline) {
      verify(quote);
      iterations++;
      now = performance.now();
    }
    const elapsed = (now - start) / 1000;
    process.stdout.write(JSON.stringify({
      impl: opts.impl, ok: first.ok, status: first.status, error: first.error,
      load_ms: loadMs, cold_ms: coldMs, iterations, seconds: elapsed,
      quotes_per_s: iterations / elapsed, max_rss_kb: peakRssKib(),
    }) + '\n');
    return;
  }

  const lines = [];
  for (const file of opts.quotes) {
    lines.push(JSON.stringify(await verifyOne(verify, file, readOrDie(file, 'quote'))));
  }
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((e) => {
  process.stderr.write(`dcap-qvl-oracle: ${errorText(e)}\n`);
  process.exit(2);
});
