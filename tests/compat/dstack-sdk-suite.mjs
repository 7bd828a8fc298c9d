// Runs every client method of the published @phala/dstack-sdk (DstackClient, TappdClient, the viem
// and solana helpers) against a running `dstack agent` and checks each answer: shapes and lengths,
// determinism where upstream is deterministic, the requested report data inside the quote, key
// derivations recomputed here from the app keys, Sign -> Verify. Driven by test_dstack_sdk.py.
//
//   node dstack-sdk-suite.mjs --dstack ENDPOINT --tappd ENDPOINT --label NAME --out DIR [--appkeys FILE] [--app-name NAME]
//
// ENDPOINT is a unix socket path or an http://127.0.0.1:PORT URL (both are what the SDK accepts).
// Prints one JSON line per check {"check","label","ok","detail"}, one {"artifact"} line per file
// written to DIR for `dstack verify` (with the report data it must carry), one {"facts"} line with the
// deterministic answers (compared across transports by the driver) and a final {"summary"} line.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { DstackClient, TappdClient } from '@phala/dstack-sdk';
import { toViemAccount, toViemAccountSecure } from '@phala/dstack-sdk/viem';
import { toKeypair, toKeypairSecure } from '@phala/dstack-sdk/solana';
import { secp256k1 } from '@noble/curves/secp256k1';
import { ed25519 } from '@noble/curves/ed25519';
import { keccak_256, keccak_384, keccak_512 } from '@noble/hashes/sha3';
import { privateKeyToAccount } from 'viem/accounts';
import { verifyMessage } from 'viem';
import { Keypair } from '@solana/web3.js';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
for (const required of ['dstack', 'tappd', 'label', 'out']) {
  if (!args[required]) {
    console.error(`usage: node dstack-sdk-suite.mjs --dstack EP --tappd EP --label NAME --out DIR [--appkeys FILE]`);
    process.exit(2);
  }
}
const label = args.label;
const appKeys = args.appkeys ? JSON.parse(fs.readFileSync(args.appkeys, 'utf8')) : null;

// The SDK and its helpers warn on stderr about deprecated calls; keep stdout for our JSON lines.
console.warn = () => {};
console.error = () => {};

let passed = 0, failed = 0;
const facts = {};
function report(check, ok, detail) {
  if (ok) passed++; else failed++;
  process.stdout.write(JSON.stringify({ check, label, ok, detail: detail ?? null }) + '\n');
}
class CheckFailed extends Error {}
function expect(condition, message) { if (!condition) throw new CheckFailed(message); }
function eq(actual, expected, what) {
  if (actual !== expected) throw new CheckFailed(`${what}: got ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
}
async function check(name, body) {
  try {
    const detail = await body();
    report(name, true, detail);
  } catch (error) {
    report(name, false, error instanceof CheckFailed ? error.message : `threw: ${error?.stack ?? error}`);
  }
}
async function rejects(promise) {
  try { await promise; } catch (error) { return error; }
  throw new CheckFailed('resolved, expected a rejection');
}
function artifact(file, kind, reportData, note) {
  process.stdout.write(JSON.stringify({ artifact: path.join(args.out, file), kind, label, report_data: reportData, note }) + '\n');
}
function writeArtifact(file, content, kind, reportData, note) {
  fs.writeFileSync(path.join(args.out, file), content);
  artifact(file, kind, reportData, note);
}

const hex = (bytes) => Buffer.from(bytes).toString('hex');
const isHex = (text, chars) => typeof text === 'string' && /^[0-9a-f]*$/.test(text) && (chars === undefined ? text.length % 2 === 0 : text.length === chars);
const sha256 = (data) => crypto.createHash('sha256').update(data).digest();
const hkdf = (ikm, info) => Buffer.from(crypto.hkdfSync('sha256', ikm, Buffer.from('RATLS'), Buffer.from(info), 32));
const pemBody = (pem) => Buffer.from(pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
const pemBlocks = (text) => text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g) ?? [];
// The PKCS#8 profile of spec/agent.md §6.4.1: 138 bytes, fixed header, no [0] parameters.
const PKCS8_PREFIX = '308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420';
const OID_ATTESTATION = '060a2b0601040183e73d0108';  // 1.3.6.1.4.1.62397.1.8
const OID_APP_INFO = '060a2b0601040183e73d0109';     // 1.3.6.1.4.1.62397.1.9
const OID_SPECIAL_USAGE = '060a2b0601040183e73d0104';
const EKU_SERVER = '1.3.6.1.5.5.7.3.1', EKU_CLIENT = '1.3.6.1.5.5.7.3.2';

// A v4 TD quote: report data at 568..632, RTMRs at 376 + 48 i (48-byte header + TD report body).
const quoteReportData = (quoteHex) => quoteHex.slice(2 * 568, 2 * 632);
const quoteRtmr = (quoteHex, i) => quoteHex.slice(2 * (376 + 48 * i), 2 * (424 + 48 * i));
function replayImr(events, imr) {
  let mr = Buffer.alloc(48);
  for (const event of events.filter((e) => e.imr === imr)) {
    mr = crypto.createHash('sha384').update(Buffer.concat([mr, Buffer.from(event.digest, 'hex')])).digest();
  }
  return mr.toString('hex');
}
// The app's root public key, recovered from GetKey's chain[0] (spec/agent.md §6.2).
function recoverAppKey(purpose, derivedPubHex, chain0) {
  const digest = keccak_256(Buffer.from(`${purpose}:${derivedPubHex}`));
  const sig = secp256k1.Signature.fromCompact(chain0.slice(0, 64)).addRecoveryBit(chain0[64]);
  return hex(sig.recoverPublicKey(digest).toRawBytes(true));
}
function leafChecks(response) {
  expect(typeof response.key === 'string' && response.key.startsWith('-----BEGIN PRIVATE KEY-----\n'), `key is not a PKCS#8 PEM: ${JSON.stringify(response).slice(0, 200)}`);
  expect(Array.isArray(response.certificate_chain) && response.certificate_chain.length === 2, `certificate_chain has ${response.certificate_chain?.length} entries, expected 2 (leaf, app CA)`);
  const der = pemBody(response.key);
  eq(der.length, 138, 'PKCS#8 DER length');
  eq(der.subarray(0, 36).toString('hex'), PKCS8_PREFIX, 'PKCS#8 header');
  const leaf = new crypto.X509Certificate(response.certificate_chain[0]);
  const ca = new crypto.X509Certificate(response.certificate_chain[1]);
  expect(leaf.verify(ca.publicKey), 'leaf is not signed by the second certificate of the chain');
  const keySpki = crypto.createPublicKey(response.key).export({ type: 'spki', format: 'der' });
  expect(keySpki.equals(leaf.publicKey.export({ type: 'spki', format: 'der' })), 'leaf public key is not the returned key');
  expect(response.asUint8Array().length === 138 && hex(response.asUint8Array(32)) === PKCS8_PREFIX.slice(0, 64), 'asUint8Array: not the DER');
  return { leaf, der, rawHex: leaf.raw.toString('hex') };
}

const dstack = new DstackClient(args.dstack);
const tappd = new TappdClient(args.tappd);
const reportData = (text) => Buffer.from(text).toString('hex').padEnd(128, '0');

// ---------------------------------------------------------------- DstackClient
await check('isReachable', async () => { eq(await dstack.isReachable(), true, 'isReachable'); });
await check('isReachable: closed port is false', async () => {
  eq(await new DstackClient('http://127.0.0.1:1').isReachable(), false, 'isReachable on 127.0.0.1:1');
});

await check('version', async () => {
  const v = await dstack.version();
  expect(typeof v.version === 'string' && v.version.length > 0, `version: ${JSON.stringify(v)}`);
  expect(typeof v.rev === 'string', `rev: ${JSON.stringify(v)}`);
  return `${v.version} ${v.rev}`;
});

let appPub = null;
const keyCases = [['default (secp256k1)', undefined], ['secp256k1', 'secp256k1'], ['k256', 'k256'], ['ed25519', 'ed25519']];
for (const [name, algorithm] of keyCases) {
  await check(`getKey ${name}`, async () => {
    const a = await dstack.getKey('/compat/key', 'test', algorithm);
    const b = await dstack.getKey('/compat/key', 'test', algorithm);
    eq(a.__name__, 'GetKeyResponse', '__name__');
    eq(a.key.length, 32, 'key length');
    eq(a.signature_chain.length, 2, 'signature_chain length');
    eq(a.signature_chain[0].length, 65, 'chain[0] length (r||s||recid)');
    expect(a.signature_chain[1].length === 0 || a.signature_chain[1].length === 65, `chain[1] length ${a.signature_chain[1].length}`);
    eq(hex(a.key), hex(b.key), 'key determinism');
    eq(hex(a.signature_chain[0]), hex(b.signature_chain[0]), 'chain[0] determinism (RFC 6979)');
    const pub = algorithm === 'ed25519' ? hex(ed25519.getPublicKey(a.key)) : hex(secp256k1.getPublicKey(a.key, true));
    const recovered = recoverAppKey('test', pub, a.signature_chain[0]);
    if (appPub === null) appPub = recovered;
    eq(recovered, appPub, 'app key recovered from chain[0] over keccak("test:" + pubkey)');
    if (appKeys) {
      eq(hex(a.key), hkdf(Buffer.from(appKeys.k256_key, 'hex'), '/compat/key').toString('hex'), 'key = HKDF(k256_key, path)');
      eq(recovered, hex(secp256k1.getPublicKey(Buffer.from(appKeys.k256_key, 'hex'), true)), 'recovered key = k256_key public key');
    }
    facts[`getKey ${name}`] = hex(a.key) + ':' + hex(a.signature_chain[0]);
  });
}
await check('getKey: algorithms share the key, purpose only changes the signature, path changes the key', async () => {
  const secp = await dstack.getKey('/compat/key', 'test', 'secp256k1');
  const ed = await dstack.getKey('/compat/key', 'test', 'ed25519');
  const k256 = await dstack.getKey('/compat/key', 'test', 'k256');
  const otherPurpose = await dstack.getKey('/compat/key', 'other', 'secp256k1');
  const otherPath = await dstack.getKey('/compat/other', 'test', 'secp256k1');
  const empty = await dstack.getKey();
  eq(hex(ed.key), hex(secp.key), 'ed25519 vs secp256k1 key');
  eq(hex(k256.signature_chain[0]), hex(secp.signature_chain[0]), 'k256 vs secp256k1 chain[0]');
  eq(hex(otherPurpose.key), hex(secp.key), 'key under another purpose');
  expect(hex(otherPurpose.signature_chain[0]) !== hex(secp.signature_chain[0]), 'chain[0] did not change with the purpose');
  expect(hex(otherPath.key) !== hex(secp.key), 'key did not change with the path');
  eq(empty.key.length, 32, 'getKey() key length');
  if (appKeys) eq(hex(empty.key), hkdf(Buffer.from(appKeys.k256_key, 'hex'), '').toString('hex'), 'getKey() = HKDF(k256_key, "")');
});
await check('getKey secp256k1_prehashed is refused', async () => {
  await rejects(dstack.getKey('/compat/key', 'test', 'secp256k1_prehashed'));
});

// getTlsKey
let ratlsPem = null;
await check('getTlsKey default', async () => {
  const a = await dstack.getTlsKey();
  const b = await dstack.getTlsKey();
  eq(a.__name__, 'GetTlsKeyResponse', '__name__');
  const { leaf, rawHex } = leafChecks(a);
  leafChecks(b);
  expect(a.key !== b.key, 'two GetTlsKey calls returned the same key');
  expect(a.certificate_chain[0] !== b.certificate_chain[0], 'two GetTlsKey calls returned the same certificate');
  eq(a.certificate_chain[1], b.certificate_chain[1], 'app CA certificate');
  expect(leaf.keyUsage?.includes(EKU_SERVER) && !leaf.keyUsage.includes(EKU_CLIENT), `EKU (default serverAuth only): ${leaf.keyUsage}`);
  expect(!rawHex.includes(OID_ATTESTATION), 'attestation extension present without usageRaTls');
  expect(!rawHex.includes(OID_APP_INFO), 'app-info extension present without withAppInfo');
  expect(rawHex.includes(OID_SPECIAL_USAGE), 'special-usage extension missing');
  expect(leaf.subjectAltName === undefined, `unexpected SAN ${leaf.subjectAltName}`);
});
await check('getTlsKey subject, altNames, server+client auth', async () => {
  const r = await dstack.getTlsKey({ subject: 'test-subject', altNames: ['localhost', '127.0.0.1', 'app.example'], usageServerAuth: true, usageClientAuth: true });
  const { leaf } = leafChecks(r);
  expect(/(^|\n)CN=test-subject(\n|$)/.test(leaf.subject), `subject ${JSON.stringify(leaf.subject)}`);
  eq(leaf.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1, DNS:app.example', 'subjectAltName');
  expect(leaf.keyUsage?.includes(EKU_SERVER) && leaf.keyUsage.includes(EKU_CLIENT), `EKU ${leaf.keyUsage}`);
  expect(leaf.checkHost('localhost') === 'localhost' && leaf.checkIP('127.0.0.1') === '127.0.0.1', 'checkHost/checkIP');
});
await check('getTlsKey usageRaTls', async () => {
  const r = await dstack.getTlsKey({ subject: 'ratls', usageRaTls: true, usageServerAuth: false, usageClientAuth: true });
  const { leaf, rawHex } = leafChecks(r);
  expect(rawHex.includes(OID_ATTESTATION), 'no attestation extension (1.3.6.1.4.1.62397.1.8)');
  expect(leaf.keyUsage?.includes(EKU_CLIENT) && !leaf.keyUsage.includes(EKU_SERVER), `EKU ${leaf.keyUsage}`);
  ratlsPem = r.certificate_chain.join('');
  const spki = leaf.publicKey.export({ type: 'spki', format: 'der' });
  const bound = crypto.createHash('sha512').update(Buffer.concat([Buffer.from('ratls-cert:'), spki])).digest('hex');
  writeArtifact(`${label}-ratls.pem`, ratlsPem, 'ratls', bound, 'getTlsKey({usageRaTls:true})');
});
await check('getTlsKey notBefore/notAfter and withAppInfo', async () => {
  const notBefore = 1767225600, notAfter = 1798761600;  // 2026-01-01, 2027-01-01
  const r = await dstack.getTlsKey({ subject: 'validity', notBefore, notAfter, withAppInfo: true });
  const { leaf, rawHex } = leafChecks(r);
  eq(new Date(leaf.validFrom).getTime() / 1000, notBefore, 'notBefore');
  eq(new Date(leaf.validTo).getTime() / 1000, notAfter, 'notAfter');
  expect(rawHex.includes(OID_APP_INFO), 'no app-info extension (1.3.6.1.4.1.62397.1.9)');
  expect(!rawHex.includes(OID_ATTESTATION), 'attestation extension without usageRaTls');
});
await check('getTlsKey default validity: about ten years from now', async () => {
  const { leaf } = leafChecks(await dstack.getTlsKey({ subject: 'v' }));
  const days = (new Date(leaf.validTo).getTime() - Date.now()) / 86400e3;
  expect(days > 3649 && days < 3651, `notAfter is ${days.toFixed(2)} days away, expected 3650`);
});
await check('getTlsKey notBefore >= notAfter is refused', async () => {
  // The SDK does not look at the HTTP status: the agent's error object comes back as the response.
  const r = await dstack.getTlsKey({ notBefore: 1800000000, notAfter: 1800000000 });
  expect(r.key === undefined && typeof r.error === 'string' && r.error.includes('not_before must be earlier than not_after'),
    `response ${JSON.stringify(r).slice(0, 300)}`);
});

// getQuote / attest / tdxQuote
let infoRtmrCheck = null;
for (const [name, data] of [['text', 'dstack-sdk-compat'], ['64 bytes', crypto.createHash('sha512').update('x').digest()], ['empty', '']]) {
  await check(`getQuote ${name}`, async () => {
    const q = await dstack.getQuote(data);
    const want = Buffer.from(data).toString('hex').padEnd(128, '0');
    expect(isHex(q.quote) && q.quote.length > 2 * 632, `quote: ${String(q.quote).slice(0, 80)}`);
    eq(q.report_data, want, 'report_data (right-padded with zeros)');
    eq(quoteReportData(q.quote), want, 'report data inside the quote');
    eq(typeof q.vm_config, 'string', 'vm_config type');
    const events = JSON.parse(q.event_log);
    expect(Array.isArray(events) && events.length > 0, 'event_log is not a non-empty JSON array');
    const replayed = q.replayRtmrs();
    eq(replayed.length, 4, 'replayRtmrs length');
    // The simulator returns the full event log (spec/agent.md §8), so it replays to the quote's RTMRs.
    for (let i = 0; i < 4; i++) eq(replayed[i], quoteRtmr(q.quote, i), `replayRtmrs()[${i}] vs quote RTMR${i}`);
    const safe = name.replace(/ /g, '-');
    writeArtifact(`${label}-getquote-${safe}.json`, JSON.stringify({ quote: q.quote, event_log: q.event_log, report_data: q.report_data, vm_config: q.vm_config }),
      'quote', want, `getQuote(${name})`);
    infoRtmrCheck = q;
  });
}
await check('getQuote rejects more than 64 bytes (client side)', async () => { await rejects(dstack.getQuote(Buffer.alloc(65))); });
await check('DstackClient.tdxQuote raw is getQuote', async () => {
  const q = await dstack.tdxQuote('legacy-raw', 'raw');
  eq(quoteReportData(q.quote), reportData('legacy-raw'), 'report data inside the quote');
  await rejects(dstack.tdxQuote('x', 'sha256'));
  await rejects(dstack.deriveKey('/', 'x'));
});
await check('attest', async () => {
  const data = 'attest-compat';
  const a = await dstack.attest(data);
  eq(a.__name__, 'AttestResponse', '__name__');
  expect(isHex(a.attestation) && a.attestation.length > 2000, `attestation: ${String(a.attestation).slice(0, 80)}`);
  expect(a.attestation.includes(reportData(data)), 'the attestation does not carry the report data');
  writeArtifact(`${label}-attest.json`, JSON.stringify({ attestation: a.attestation }), 'quote', reportData(data), 'attest()');
});

// info
await check('info', async () => {
  const started = Date.now();
  const info = await dstack.info();
  const took = Date.now() - started;
  // Over the unix socket the SDK stops reading at Content-Length counted in JS characters: raw
  // UTF-8 in the answer would leave it waiting for the server's keep-alive timer.
  expect(took < 2000, `info() took ${took} ms`);
  if (args['app-name'] !== undefined) eq(info.app_name, args['app-name'], 'app_name (non-ASCII)');
  const again = await dstack.info();
  expect(isHex(info.app_id, 40) && isHex(info.instance_id, 40), `app_id ${info.app_id}, instance_id ${info.instance_id}`);
  expect(isHex(info.compose_hash, 64) && isHex(info.device_id, 64) && isHex(info.os_image_hash, 64) && isHex(info.mr_aggregated, 64),
    'compose_hash/device_id/os_image_hash/mr_aggregated are not 32-byte hex');
  expect(typeof info.app_name === 'string' && info.app_name.length > 0, 'app_name empty');
  eq(pemBlocks(info.app_cert).length, 2, 'app_cert PEM certificates');
  expect(typeof info.key_provider_info === 'string', 'key_provider_info');
  const tcb = info.tcb_info;
  for (const k of ['mrtd', 'rtmr0', 'rtmr1', 'rtmr2', 'rtmr3']) expect(isHex(tcb[k], 96), `tcb_info.${k}: ${tcb[k]}`);
  for (const k of ['compose_hash', 'device_id', 'os_image_hash', 'mr_aggregated']) eq(tcb[k], info[k], `tcb_info.${k}`);
  expect(Array.isArray(tcb.event_log) && tcb.event_log.length > 0, 'tcb_info.event_log empty');
  eq(sha256(tcb.app_compose).toString('hex'), info.compose_hash, 'sha256(tcb_info.app_compose) vs compose_hash');
  eq(JSON.parse(tcb.app_compose).name, info.app_name, 'app_compose name vs app_name');
  for (let i = 0; i < 4; i++) eq(replayImr(tcb.event_log, i), tcb[`rtmr${i}`], `tcb_info.event_log replays to rtmr${i}`);
  const appIdEvent = tcb.event_log.find((e) => e.imr === 3 && e.event === 'app-id');
  eq(appIdEvent?.event_payload, info.app_id, 'app-id event payload vs app_id');
  eq(again.app_id, info.app_id, 'app_id determinism');
  eq(again.app_cert, info.app_cert, 'app_cert is issued once');
  facts.app_id = info.app_id; facts.compose_hash = info.compose_hash; facts.instance_id = info.instance_id;
});

// sign / verify
const message = Buffer.from('dstack-sdk-compat signed message');
const digest = sha256(message);
for (const algorithm of ['ed25519', 'secp256k1', 'secp256k1_prehashed']) {
  await check(`sign/verify ${algorithm}`, async () => {
    const data = algorithm === 'secp256k1_prehashed' ? digest : message;
    const s = await dstack.sign(algorithm, data);
    eq(s.__name__, 'SignResponse', '__name__');
    eq(s.signature.length, 64, 'signature length');
    eq(s.public_key.length, algorithm === 'ed25519' ? 32 : 33, 'public_key length');
    eq(s.signature_chain.length, 3, 'signature_chain length');
    eq(hex(s.signature_chain[0]), hex(s.signature), 'signature_chain[0] vs signature');
    const keyAlgorithm = algorithm === 'ed25519' ? 'ed25519' : 'secp256k1';
    const key = await dstack.getKey('vms', 'signing', keyAlgorithm);
    eq(hex(s.signature_chain[1]), hex(key.signature_chain[0]), 'signature_chain[1] vs GetKey(vms, signing) chain[0]');
    eq(hex(s.signature_chain[2]), hex(key.signature_chain[1]), 'signature_chain[2] vs GetKey(vms, signing) chain[1]');
    if (algorithm === 'ed25519') {
      eq(hex(s.public_key), hex(ed25519.getPublicKey(key.key)), 'public key vs GetKey(vms, signing, ed25519)');
      expect(ed25519.verify(s.signature, data, s.public_key), 'noble ed25519 does not verify the signature');
    } else {
      eq(hex(s.public_key), hex(secp256k1.getPublicKey(key.key, true)), 'public key vs GetKey(vms, signing)');
      expect(secp256k1.verify(s.signature, algorithm === 'secp256k1' ? digest : data, s.public_key, { lowS: true }),
        'noble secp256k1 does not verify the (low-S) signature');
    }
    const again = await dstack.sign(algorithm, data);
    if (algorithm !== 'ed25519') eq(hex(again.signature), hex(s.signature), 'RFC 6979 determinism');
    eq((await dstack.verify(algorithm, data, s.signature, s.public_key)).valid, true, 'verify(good)');
    const tampered = Buffer.from(s.signature); tampered[0] ^= 1;
    eq((await dstack.verify(algorithm, data, tampered, s.public_key)).valid, false, 'verify(tampered signature)');
    const otherData = algorithm === 'secp256k1_prehashed' ? sha256('other') : Buffer.from('other data');
    eq((await dstack.verify(algorithm, otherData, s.signature, s.public_key)).valid, false, 'verify(other data)');
    facts[`sign ${algorithm}`] = hex(s.public_key) + (algorithm === 'ed25519' ? '' : ':' + hex(s.signature));
  });
}
await check('sign secp256k1 of data = sign secp256k1_prehashed of sha256(data)', async () => {
  const a = await dstack.sign('secp256k1', message);
  const b = await dstack.sign('secp256k1_prehashed', digest);
  eq(hex(b.signature), hex(a.signature), 'signatures');
});
await check('sign: unsupported algorithm and short digest are refused', async () => {
  await rejects(dstack.sign('rsa', message));
  await rejects(dstack.sign('secp256k1_prehashed', Buffer.alloc(31)));
});

// emitEvent: the simulated TEE measures it into RTMR3 and the next quote's log carries it.
await check('emitEvent', async () => {
  const name = `compat-${label}-${process.pid}`;
  const payload = Buffer.from(`payload ${Date.now()}`);
  const before = JSON.parse((await dstack.getQuote('before')).event_log);
  eq(await dstack.emitEvent(name, payload), undefined, 'emitEvent result');
  const q = await dstack.getQuote('after-emit');
  const events = JSON.parse(q.event_log);
  eq(events.length, before.length + 1, 'event log grew by one');
  const last = events[events.length - 1];
  eq(last.imr, 3, 'imr'); eq(last.event, name, 'event'); eq(last.event_payload, hex(payload), 'event_payload');
  eq(q.replayRtmrs()[3], quoteRtmr(q.quote, 3), 'RTMR3 replays with the new event');
  writeArtifact(`${label}-getquote-after-emit.json`, JSON.stringify({ quote: q.quote, event_log: q.event_log, report_data: q.report_data, vm_config: q.vm_config }),
    'quote', reportData('after-emit'), 'getQuote after emitEvent');
  await rejects(dstack.emitEvent('', payload));
});
await check('emitEvent of a boot event name is not measured', async () => {
  // The SDK ignores EmitEvent's response, so the refusal shows only in the log.
  const count = (log) => JSON.parse(log).filter((e) => e.event === 'app-id').length;
  const before = count((await dstack.getQuote('')).event_log);
  await dstack.emitEvent('app-id', Buffer.from('forged'));
  eq(count((await dstack.getQuote('')).event_log), before, 'app-id events');
});

// ---------------------------------------------------------------- TappdClient
await check('TappdClient isReachable', async () => { eq(await tappd.isReachable(), true, 'isReachable'); });
let derived = null;
await check('TappdClient deriveKey', async () => {
  const a = await tappd.deriveKey('/', 'test');
  const b = await tappd.deriveKey('/', 'test');
  const other = await tappd.deriveKey('/other', 'test');
  const { leaf, der } = leafChecks(a);
  leafChecks(other);
  eq(a.key, b.key, 'deriveKey determinism (same path)');
  expect(a.key !== other.key, 'another path gave the same key');
  expect(/(^|\n)CN=test(\n|$)/.test(leaf.subject), `subject ${JSON.stringify(leaf.subject)}`);
  if (appKeys) eq(der.subarray(36, 68).toString('hex'), hkdf(Buffer.from(appKeys.k256_key, 'hex'), '/').toString('hex'), 'P-256 scalar = HKDF(k256_key, "/")');
  derived = a;
  facts['deriveKey /'] = a.key;
});
await check('TappdClient deriveKey subject defaults to the path, alt_names', async () => {
  const r = await tappd.deriveKey('compat.example', undefined, ['compat.example', '::1']);
  const { leaf } = leafChecks(r);
  expect(/(^|\n)CN=compat\.example(\n|$)/.test(leaf.subject), `subject ${JSON.stringify(leaf.subject)}`);
  eq(leaf.subjectAltName, 'DNS:compat.example, IP Address:0:0:0:0:0:0:0:1', 'subjectAltName');
});
const hashes = {
  sha256: (d) => crypto.createHash('sha256').update(d).digest(),
  sha384: (d) => crypto.createHash('sha384').update(d).digest(),
  sha512: (d) => crypto.createHash('sha512').update(d).digest(),
  'sha3-256': (d) => crypto.createHash('sha3-256').update(d).digest(),
  'sha3-384': (d) => crypto.createHash('sha3-384').update(d).digest(),
  'sha3-512': (d) => crypto.createHash('sha3-512').update(d).digest(),
  keccak256: (d) => Buffer.from(keccak_256(d)),
  keccak384: (d) => Buffer.from(keccak_384(d)),
  keccak512: (d) => Buffer.from(keccak_512(d)),
};
for (const algorithm of [undefined, ...Object.keys(hashes)]) {
  await check(`TappdClient tdxQuote ${algorithm ?? 'default (sha512)'}`, async () => {
    const content = `tappd-${algorithm ?? 'default'}`;
    const q = await tappd.tdxQuote(content, algorithm);
    const effective = algorithm ?? 'sha512';
    const want = hashes[effective](Buffer.from(`app-data:${content}`)).toString('hex').padEnd(128, '0');
    eq(quoteReportData(q.quote), want, `report data = ${effective}("app-data:" + content), zero-padded`);
    eq(q.hash_algorithm, effective, 'hash_algorithm echoed');
    eq(q.prefix, 'app-data', 'prefix echoed without its colon');
    expect(Array.isArray(JSON.parse(q.event_log)), 'event_log');
    for (let i = 0; i < 4; i++) eq(q.replayRtmrs()[i], quoteRtmr(q.quote, i), `replayRtmrs()[${i}]`);
    if (['sha256', 'keccak512', undefined].includes(algorithm)) {
      writeArtifact(`${label}-tdxquote-${effective}.json`, JSON.stringify({ quote: q.quote, event_log: q.event_log }), 'quote', want, `tdxQuote(${effective})`);
    }
  });
}
await check('TappdClient tdxQuote raw (the SDK left-pads)', async () => {
  const full = crypto.createHash('sha512').update('raw').digest();
  const q = await tappd.tdxQuote(full, 'raw');
  eq(quoteReportData(q.quote), hex(full), 'report data (64 bytes, as is)');
  eq(q.hash_algorithm, 'raw', 'hash_algorithm'); eq(q.prefix, '', 'prefix');
  const short = await tappd.tdxQuote('abc', 'raw');
  const want = hex(Buffer.from('abc')).padStart(128, '0');
  eq(quoteReportData(short.quote), want, 'report data (left-padded by the SDK)');
  writeArtifact(`${label}-tdxquote-raw.json`, JSON.stringify({ quote: short.quote, event_log: short.event_log }), 'quote', want, 'tdxQuote(abc, raw)');
});
await check('TappdClient tdxQuote unknown hash algorithm is refused', async () => {
  await rejects(tappd.tdxQuote('x', 'md5'));
});
await check('TappdClient info (POST /Info: no such route on tappd, as upstream)', async () => {
  // TappdClient inherits DstackClient.info, whose /Info path the Tappd service (mounted at /prpc/)
  // does not serve, upstream either (spec/agent.md §3): the call must fail, not answer garbage.
  await rejects(tappd.info());
});

// ---------------------------------------------------------------- viem and solana helpers
await check('viem toViemAccount / toViemAccountSecure (GetKey)', async () => {
  const key = await dstack.getKey('/compat/wallet', 'ethereum');
  const account = toViemAccount(key);
  const secure = toViemAccountSecure(key);
  eq(account.address, privateKeyToAccount(`0x${hex(key.key)}`).address, 'address');
  eq(secure.address, account.address, 'secure address (GetKey: the key itself)');
  eq(toViemAccount(await dstack.getKey('/compat/wallet', 'ethereum')).address, account.address, 'determinism');
  const signature = await account.signMessage({ message: 'compat' });
  eq(await verifyMessage({ address: account.address, message: 'compat', signature }), true, 'verifyMessage');
  facts['viem address'] = account.address;
});
await check('viem toViemAccount / toViemAccountSecure (Tappd deriveKey, deprecated)', async () => {
  expect(derived, 'no deriveKey result');
  const der = pemBody(derived.key);
  // The legacy helper takes the DER's first 32 bytes: upstream's constant PKCS#8 header.
  eq(toViemAccount(derived).address, privateKeyToAccount(`0x${PKCS8_PREFIX.slice(0, 64)}`).address, 'legacy address');
  const secure = toViemAccountSecure(derived);
  eq(secure.address, privateKeyToAccount(`0x${sha256(der).toString('hex')}`).address, 'secure address = sha256(DER)');
  eq(toViemAccountSecure(await tappd.deriveKey('/', 'test')).address, secure.address, 'determinism');
  const tls = [await dstack.getTlsKey(), await dstack.getTlsKey()].map((r) => toViemAccountSecure(r).address);
  expect(tls[0] !== tls[1], 'toViemAccountSecure(getTlsKey) repeated an address');
  facts['viem secure deriveKey'] = secure.address;
});
await check('solana toKeypair / toKeypairSecure (GetKey)', async () => {
  const key = await dstack.getKey('/compat/wallet', 'solana', 'ed25519');
  const pair = toKeypair(key);
  eq(hex(pair.publicKey.toBytes()), hex(ed25519.getPublicKey(key.key)), 'public key');
  eq(toKeypairSecure(key).publicKey.toBase58(), pair.publicKey.toBase58(), 'secure keypair (GetKey: the key itself)');
  eq(toKeypair(await dstack.getKey('/compat/wallet', 'solana', 'ed25519')).publicKey.toBase58(), pair.publicKey.toBase58(), 'determinism');
  const sig = ed25519.sign(message, pair.secretKey.subarray(0, 32));
  expect(ed25519.verify(sig, message, pair.publicKey.toBytes()), 'keypair does not sign');
  facts['solana'] = pair.publicKey.toBase58();
});
await check('solana toKeypair / toKeypairSecure (Tappd deriveKey, deprecated)', async () => {
  const der = pemBody(derived.key);
  eq(toKeypair(derived).publicKey.toBase58(), Keypair.fromSeed(Buffer.from(PKCS8_PREFIX.slice(0, 64), 'hex')).publicKey.toBase58(), 'legacy keypair');
  const secure = toKeypairSecure(derived);
  eq(secure.publicKey.toBase58(), Keypair.fromSeed(sha256(der)).publicKey.toBase58(), 'secure keypair = fromSeed(sha256(DER))');
  eq(toKeypairSecure(await tappd.deriveKey('/', 'test')).publicKey.toBase58(), secure.publicKey.toBase58(), 'determinism');
});

process.stdout.write(JSON.stringify({ facts, label }) + '\n');
process.stdout.write(JSON.stringify({ summary: { passed, failed }, label }) + '\n');
process.exit(failed === 0 ? 0 : 1);
