#!/usr/bin/env python3
"""`dstack kms` end to end on loopback with the simulated TEE: bootstrap, the RA-TLS service read
by curl and openssl, app keys through the guest-side client (deterministic across calls, restarts
and an onboarded second KMS), encrypted env, /metrics through a Prometheus parser, the policy file
and a webhook (allow, deny with reasons, down, slow, garbage), and attacks that must release
nothing.

The KMS and the apps each run a `dstack agent --simulator` of their own; they share one simulated
"Intel" PKI (copied before the apps' agents first start), as CVMs of one platform share Intel's.

    test_kms.py BUILD_DIR
"""

import hashlib
import http.server
import json
import os
import shutil
import socket
import stat
import subprocess
import threading
import time

import harness

KEY_FILES = ["root-ca.key", "root-ca.crt", "root-k256.key", "tmp-ca.key", "tmp-ca.crt", "rpc.key", "rpc.crt"]
SECRET_FILES = ["root-ca.key", "root-k256.key", "tmp-ca.key", "rpc.key"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Platform:
    """One simulated machine: agents whose quotes verify against one PKI."""

    def __init__(self, h, name):
        self.h = h
        self.dir = h.tmpdir(name)
        self.agents = []

    def agent_dir(self, name):
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.join(path, "tee"), exist_ok=True)
        if self.agents:  # share the first agent's PKI (not its TD identity)
            source = os.path.join(self.agents[0], "tee")
            for entry in os.listdir(source):
                if entry.endswith((".pem", ".key", ".crl.der")) or entry == "collateral.json":
                    shutil.copy2(os.path.join(source, entry), os.path.join(path, "tee", entry))
        self.agents.append(path)
        return path

    @property
    def root(self):
        return os.path.join(self.agents[0], "tee", "root.pem")

    @property
    def collateral(self):
        return os.path.join(self.agents[0], "tee", "collateral.json")


def agent(h, sim_dir, name):
    return h.server([h.dstack, "agent", "--simulator", sim_dir], count=4, name=name, timeout=30)


def agent_socket(sim_dir):
    return "unix:" + os.path.join(sim_dir, "dstack.sock")


def attestation_flags(platform):
    return ["--trust-root", platform.root, "--collateral", platform.collateral]


def kms_server(h, cert_dir, platform, kms_agent, *extra, name="kms", port=None, collateral=None, count=1):
    port = port or free_port()
    flags = attestation_flags(platform)
    if collateral:
        flags = ["--trust-root", platform.root, "--collateral", collateral]
    cmd = [h.dstack, "kms", "serve", "--cert-dir", cert_dir, "--agent", agent_socket(kms_agent),
           "--listen", f"127.0.0.1:{port}", *flags, *extra]
    return h.server(cmd, name=name, timeout=30, count=count)


def kms_url(server):
    return f"https://127.0.0.1:{server.address.port}"


def curl_kms(h, server, method, body=None, extra=()):
    cmd = ["curl", "-sS", "-k", "--max-time", "20", "-w", "\n%{http_code}", *extra]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
    cmd.append(f"{kms_url(server)}/prpc/{method}?json")
    r = h.run(cmd, timeout=30)
    harness.expect(r.rc == 0, f"curl failed: {r}")
    text, _, status = r.out.rpartition("\n")
    return int(status), text


def get_app_key(h, server, app_agent, *extra):
    return h.run([h.dstack, "kms", "get-app-key", "--kms", kms_url(server), "--agent", agent_socket(app_agent), *extra],
                 timeout=60)


def app_keys(h, server, app_agent):
    r = get_app_key(h, server, app_agent)
    harness.expect(r.rc == 0, f"get-app-key failed: {r}")
    return json.loads(r.out)


def verify_json(h, platform, path):
    r = h.run([h.dstack, "verify", "--json", *attestation_flags(platform), path])
    harness.expect(r.rc == 0, f"verify: {r}")
    return json.loads(r.out)


def identity_of(h, platform, sim_dir):
    """The agent's app_info (as policies see it), from its own attestation."""
    sock = os.path.join(sim_dir, "dstack.sock")
    r = h.run(["curl", "-sS", "--unix-socket", sock, "-X", "POST", "-H", "Content-Type: application/json",
               "-d", json.dumps({"report_data": "00" * 64}), "http://localhost/Attest"])
    harness.expect(r.rc == 0, r)
    path = os.path.join(h.tmp, f"attestation-{os.path.basename(sim_dir)}.bin")
    with open(path, "wb") as f:
        f.write(bytes.fromhex(json.loads(r.out)["attestation"]))
    info = verify_json(h, platform, path)["app_info"]
    if not info["os_image_hash"]:  # measured only by KMS-mode apps; else the VM config's claim decides
        r = h.run(["curl", "-sS", "--unix-socket", sock, "-X", "POST", "-H", "Content-Type: application/json", "-d", "{}",
                   "http://localhost/Info"])
        harness.expect(r.rc == 0, r)
        info["os_image_hash"] = json.loads(json.loads(r.out)["vm_config"])["os_image_hash"]
    return info


def write_policy(path, kms_identities, app_identities, **overrides):
    policy = {
        "gatewayAppId": "test-gateway",
        "osImages": sorted({i["os_image_hash"] for i in kms_identities + app_identities}),
        "kms": {"mrAggregated": [i["mr_aggregated"] for i in kms_identities], "devices": [], "allowAnyDevice": True},
        "apps": {i["app_id"]: {"composeHashes": [i["compose_hash"]], "devices": [], "allowAnyDevice": True}
                 for i in app_identities},
    }
    policy.update(overrides)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(policy, f)
    os.replace(tmp, path)
    return policy


class Webhook:
    """upstream's auth API on loopback: decides by a function of (route, body); may be slow."""

    def __init__(self, decide):
        self.decide = decide
        self.requests = []
        self.delay = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._reply(200, {"status": "ok", "kmsContractAddr": "0x" + "00" * 20, "gatewayAppId": "hook-gateway",
                                  "chainId": 1337, "appImplementation": "0x" + "11" * 20})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((self.path, body))
                if outer.delay:
                    time.sleep(outer.delay)
                status, reply = outer.decide(self.path, body)
                self._reply(status, reply)

            def _reply(self, status, reply):
                data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except OSError:
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.block_on_close = False  # a handler still sleeping (the slow case) must not hold the close
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def main(h):
    platform = Platform(h, "platform")
    kms_agent = platform.agent_dir("kms-agent")
    with agent(h, kms_agent, "kms agent"):
        app_agent = platform.agent_dir("app-agent")
        kms2_agent = platform.agent_dir("kms2-agent")
        with agent(h, app_agent, "app agent"), agent(h, kms2_agent, "kms2 agent"):
            run_with_agents(h, platform, kms_agent, app_agent, kms2_agent)


def run_with_agents(h, platform, kms_agent, app_agent, kms2_agent):
    certs = h.tmpdir("kms-certs")
    kms_identity = identity_of(h, platform, kms_agent)
    kms2_identity = identity_of(h, platform, kms2_agent)
    app_identity = identity_of(h, platform, app_agent)
    policy = os.path.join(h.tmp, "policy.json")
    write_policy(policy, [kms_identity, kms2_identity], [app_identity])
    policy_flags = ["--auth", "policy", "--auth-policy", policy]

    with h.case("bootstrap: upstream's files, keys 0600, bootstrap info whose attestation commits to the keys"):
        r = h.run([h.dstack, "kms", "bootstrap", "--cert-dir", certs, "--domain", "127.0.0.1",
                   "--agent", agent_socket(kms_agent), *attestation_flags(platform), *policy_flags])
        harness.expect(r.rc == 0, r)
        info = json.loads(r.out)
        for name in KEY_FILES + ["bootstrap-info.json"]:
            harness.expect(os.path.exists(os.path.join(certs, name)), f"{name} missing")
        for name in SECRET_FILES:
            mode = stat.S_IMODE(os.stat(os.path.join(certs, name)).st_mode)
            harness.expect(mode == 0o600, f"{name}: mode {oct(mode)}")
        harness.expect(len(bytes.fromhex(info["k256_pubkey"])) == 33, info)
        harness.expect(os.path.getsize(os.path.join(certs, "root-k256.key")) == 32, "root-k256.key is not 32 bytes")
        expected = keccak_bootstrap(info["ca_pubkey"], info["k256_pubkey"])
        path = os.path.join(h.tmp, "bootstrap-attestation.bin")
        with open(path, "wb") as f:
            f.write(bytes.fromhex(info["attestation"]))
        verdict = verify_json(h, platform, path)
        harness.expect(verdict["verdict"] == "VALID", verdict.get("reason"))
        harness.expect(verdict["quote"]["report_data"] == expected.hex() + "00" * 32,
                       f"report data {verdict['quote']['report_data']} is not the keys' commitment")

    with h.case("bootstrap: a second bootstrap into the same directory is refused"):
        r = h.run([h.dstack, "kms", "bootstrap", "--cert-dir", certs, "--domain", "127.0.0.1",
                   "--agent", agent_socket(kms_agent), *attestation_flags(platform), *policy_flags])
        harness.expect(r.rc != 0 and "already been bootstrapped" in r.err, r)

    with kms_server(h, certs, platform, kms_agent, *policy_flags) as server:
        with h.case("GetMeta and GetTempCaCert with curl; the server certificate chains to the root CA and says kms:rpc"):
            status, text = curl_kms(h, server, "KMS.GetMeta")
            harness.expect(status == 200, text)
            meta = json.loads(text)
            harness.expect(meta["is_dev"] is False and meta["auth_api"] == "policy", meta)
            harness.expect(len(bytes.fromhex(meta["k256_pubkey"])) == 33, meta)
            harness.expect(meta["key_epochs"][0]["epoch"] == 0, meta)
            status, text = curl_kms(h, server, "GetTempCaCert")
            harness.expect(status == 200, text)
            temp = json.loads(text)
            harness.expect(temp["ca_cert"] == meta["ca_cert"], "GetTempCaCert's ca_cert differs from GetMeta's")
            ca = os.path.join(h.tmp, "root-ca.pem")
            with open(ca, "w") as f:
                f.write(temp["ca_cert"])
            r = h.run(["openssl", "s_client", "-connect", f"127.0.0.1:{server.address.port}", "-CAfile", ca,
                       "-verify_return_error", "-brief"], stdin="")
            harness.expect(r.rc == 0 and "Verification: OK" in (r.out + r.err), r)

        with h.case("get-app-key: keys of upstream's sizes, the same on every call"):
            first = app_keys(h, server, app_agent)
            again = app_keys(h, server, app_agent)
            for name, size in [("disk_crypt_key", 32), ("env_crypt_key", 32), ("k256_key", 32), ("k256_signature", 65)]:
                harness.expect(len(bytes.fromhex(first[name])) == size, f"{name}: {first[name]}")
                harness.expect(first[name] == again[name], f"{name} differs between two calls")
            harness.expect(first["gateway_app_id"] == "test-gateway", first)
            harness.expect(first["key_provider"]["Kms"]["pubkey"] == bytes_of_spki(h, meta), first["key_provider"])

        with h.case("/metrics: a Prometheus parser reads the counters"):
            status, text = curl_kms_path(h, server, "/metrics")
            harness.expect(status == 200, text)
            families = parse_prometheus(text)
            harness.expect(families["dstack_kms_attestation_requests"] >= 2, families)
            harness.expect("dstack_kms_keys_released" in families, families)

        with h.case("GetAppKey without a client certificate: 'No attestation provided', nothing released"):
            status, text = curl_kms(h, server, "GetAppKey", {"api_version": 1, "vm_config": ""})
            harness.expect(status == 400 and "No attestation provided" in text, f"{status} {text}")

        with h.case("SignCert: an upstream-style SCALE CSR gets [leaf, app CA, root CA] that openssl verifies"):
            chain = sign_cert(h, server, app_agent)
            work = h.tmpdir("signcert")
            names = []
            for i, pem in enumerate(chain):
                names.append(os.path.join(work, f"{i}.pem"))
                with open(names[-1], "w") as f:
                    f.write(pem)
            r = h.run(["openssl", "verify", "-CAfile", names[2], "-untrusted", names[1], names[0]])
            harness.expect(r.rc == 0 and "OK" in r.out, r)
            r = h.run(["openssl", "x509", "-in", names[1], "-noout", "-subject"])
            harness.expect("Dstack App CA" in r.out, r)
            status, text = curl_kms(h, server, "SignCert", {"api_version": 2, "csr": "00", "signature": "", "vm_config": ""})
            harness.expect(status == 400 and "csr" in text, f"{status} {text}")

        with h.case("agent with KMS keys: GetTlsKey's certificate comes from the KMS's SignCert ([leaf, app CA, root CA])"):
            kms_app = platform.agent_dir("kms-app-agent")
            with open(os.path.join(kms_app, "appkeys.json"), "w") as f:
                json.dump(first, f)
            with agent(h, kms_app, "kms-app agent"):
                kms_app_identity = identity_of(h, platform, kms_app)
                harness.expect(json.loads(bytes.fromhex(kms_app_identity["key_provider_info"]))["name"] == "kms",
                               kms_app_identity["key_provider_info"])
                write_policy(policy, [kms_identity, kms2_identity], [app_identity, kms_app_identity])
                sock = os.path.join(kms_app, "dstack.sock")
                r = h.run(["curl", "-sS", "--unix-socket", sock, "-X", "POST", "-H", "Content-Type: application/json",
                           "-d", json.dumps({"subject": "app.example", "alt_names": ["app.example"], "usage_ra_tls": True,
                                             "usage_server_auth": True}), "http://localhost/GetTlsKey"], timeout=60)
                reply = json.loads(r.out)
                harness.expect("certificate_chain" in reply, r.out[:400])
                chain = reply["certificate_chain"]
                harness.expect(len(chain) == 3, f"{len(chain)} certificates")
                names = []
                for i, pem in enumerate(chain):
                    names.append(os.path.join(h.tmp, f"tls-{i}.pem"))
                    with open(names[-1], "w") as f:
                        f.write(pem)
                r = h.run(["openssl", "verify", "-CAfile", names[2], "-untrusted", names[1], names[0]])
                harness.expect(r.rc == 0, r)
                r = verify_ratls(h, platform, chain)
                harness.expect(r.rc == 0 and r.out.startswith("VALID"), r)
            write_policy(policy, [kms_identity, kms2_identity], [app_identity])

    with kms_server(h, certs, platform, kms_agent, *policy_flags) as server:
        with h.case("restart: the same app keys"):
            after = app_keys(h, server, app_agent)
            harness.expect(all(after[k] == first[k] for k in ["disk_crypt_key", "env_crypt_key", "k256_key"]),
                           "keys changed across a restart")

    certs2 = h.tmpdir("kms2-certs")
    with kms_server(h, certs, platform, kms_agent, *policy_flags) as server:
        with h.case("onboard: a second KMS copies the root keys over RA-TLS and derives identical app keys"):
            r = h.run([h.dstack, "kms", "onboard", "--source", kms_url(server), "--domain", "127.0.0.1", "--cert-dir", certs2,
                       "--agent", agent_socket(kms2_agent), *attestation_flags(platform), *policy_flags], timeout=60)
            harness.expect(r.rc == 0, r)
            harness.expect(not os.path.exists(os.path.join(certs2, "bootstrap-info.json")), "onboarding wrote bootstrap info")
            with open(os.path.join(certs, "root-k256.key"), "rb") as a, open(os.path.join(certs2, "root-k256.key"), "rb") as b:
                harness.expect(a.read() == b.read(), "the root k256 keys differ")
            with open(os.path.join(certs, "rpc.key")) as a, open(os.path.join(certs2, "rpc.key")) as b:
                harness.expect(a.read() != b.read(), "the RPC key was copied (each instance must have its own)")
            with kms_server(h, certs2, platform, kms2_agent, *policy_flags, name="kms2") as second:
                copy = app_keys(h, second, app_agent)
                harness.expect(all(copy[k] == first[k] for k in ["disk_crypt_key", "env_crypt_key", "k256_key"]),
                               "the onboarded KMS derives other keys")

        with h.case("onboard: refused when the receiver's policy does not allow the source KMS"):
            strict = os.path.join(h.tmp, "policy-no-source.json")
            write_policy(strict, [kms2_identity], [app_identity])
            r = h.run([h.dstack, "kms", "onboard", "--source", kms_url(server), "--domain", "127.0.0.1",
                       "--cert-dir", h.tmpdir("kms3-certs"), "--agent", agent_socket(kms2_agent), *attestation_flags(platform),
                       "--auth", "policy", "--auth-policy", strict], timeout=60)
            harness.expect(r.rc != 0 and "the source KMS is not allowed" in r.err and "mrAggregated" in r.err, r)

        with h.case("onboard: refused by the source when the destination's policy entry is missing (GetKmsKey denied)"):
            # The source's policy lists kms2 but a KMS of another identity asks: the app agent plays one.
            r = h.run([h.dstack, "kms", "onboard", "--source", kms_url(server), "--domain", "127.0.0.1",
                       "--cert-dir", h.tmpdir("kms4-certs"), "--agent", agent_socket(app_agent), *attestation_flags(platform),
                       "--auth", "dev", "--insecure-dev-auth"], timeout=60)
            harness.expect(r.rc != 0 and "KMS not allowed" in r.err and not os.listdir(os.path.join(h.tmp, "kms4-certs")), r)

        with h.case("onboard: a source whose attestation fails (another platform's TEE) is refused; so is a destination's"):
            rogue_platform = Platform(h, "rogue-platform")
            rogue = rogue_platform.agent_dir("rogue-kms-agent")
            with agent(h, rogue, "rogue kms agent"):
                rogue_certs = h.tmpdir("rogue-certs")
                rogue_flags = ["--agent", agent_socket(rogue), *attestation_flags(rogue_platform), "--auth", "dev",
                               "--insecure-dev-auth"]
                r = h.run([h.dstack, "kms", "bootstrap", "--cert-dir", rogue_certs, "--domain", "127.0.0.1", *rogue_flags])
                harness.expect(r.rc == 0, r)
                port = free_port()
                with h.server([h.dstack, "kms", "serve", "--cert-dir", rogue_certs, "--listen", f"127.0.0.1:{port}",
                               *rogue_flags], name="rogue kms", timeout=30):
                    # Source: the receiver trusts only the real platform's root.
                    r = h.run([h.dstack, "kms", "onboard", "--source", f"https://127.0.0.1:{port}", "--domain", "127.0.0.1",
                               "--cert-dir", h.tmpdir("kms5-certs"), "--agent", agent_socket(kms2_agent),
                               *attestation_flags(platform), *policy_flags], timeout=60)
                    harness.expect(r.rc != 0 and "the source KMS's attestation" in r.err and "invalid quote" in r.err, r)
                    harness.expect(not os.listdir(os.path.join(h.tmp, "kms5-certs")), "keys written after a failed onboarding")
                # Destination: the real KMS refuses a receiver whose quote its root does not sign.
                r = h.run([h.dstack, "kms", "onboard", "--source", kms_url(server), "--domain", "127.0.0.1",
                           "--cert-dir", h.tmpdir("kms6-certs"), "--agent", agent_socket(rogue), "--trust-root", platform.root,
                           "--collateral", platform.collateral, "--auth", "dev", "--insecure-dev-auth",
                           "--no-self-authorization"], timeout=60)
                harness.expect(r.rc != 0 and "GetKmsKey" in r.err and "invalid quote" in r.err, r)
                harness.expect(not os.listdir(os.path.join(h.tmp, "kms6-certs")), "keys written after a refused GetKmsKey")

        with h.case("encrypt-env: upstream's format for the app's key, checked against the root k256 key; the app decrypts"):
            env = os.path.join(h.tmp, "app.env")
            with open(env, "w") as f:
                f.write("# secrets\nAPI_KEY=s3cret\nGREETING=\"hello world\"\n")
            bundle = os.path.join(h.tmp, "env.bin")
            r = h.run([h.dstack, "kms", "encrypt-env", "--kms", kms_url(server), "--app-id", app_identity["app_id"],
                       "--k256-pubkey", meta["k256_pubkey"], "--out", bundle, env])
            harness.expect(r.rc == 0, r)
            keys_file = os.path.join(h.tmp, "appkeys.json")
            with open(keys_file, "w") as f:
                json.dump(first, f)
            r = h.run([h.dstack, "kms", "decrypt-env", "--keys", keys_file, bundle])
            harness.expect(r.rc == 0, r)
            harness.expect(json.loads(r.out) == {"env": [{"key": "API_KEY", "value": "s3cret"},
                                                          {"key": "GREETING", "value": "hello world"}]}, r.out)
            r = h.run([h.dstack, "kms", "encrypt-env", "--kms", kms_url(server), "--app-id", app_identity["app_id"],
                       "--k256-pubkey", "0217610d74cbd39b6143842c6d8bc310d79da1d82cc9d17f8876376221eda0c38f", "--out", bundle, env])
            harness.expect(r.rc != 0 and "not signed by the KMS root key" in r.err, r)

        with h.case("encrypt-env: upstream's bundle decrypts with Python's cryptography (X25519, AES-256-GCM, no KDF)"):
            try:
                from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
                from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            except ImportError:
                h.skip_case("python3 has no cryptography module")
            with open(bundle, "rb") as f:
                raw = f.read()
            private = X25519PrivateKey.from_private_bytes(bytes.fromhex(first["env_crypt_key"]))
            shared = private.exchange(X25519PublicKey.from_public_bytes(raw[:32]))
            plain = json.loads(AESGCM(shared).decrypt(raw[32:44], raw[44:], None))
            harness.expect(plain["env"][0] == {"key": "API_KEY", "value": "s3cret"}, plain)

        with h.case("encrypt-env --compose: the authenticated form decrypts only for that app and compose"):
            compose = os.path.join(app_agent, "app-compose.json")
            auth_bundle = os.path.join(h.tmp, "env.auth")
            r = h.run([h.dstack, "kms", "encrypt-env", "--kms", kms_url(server), "--app-id", app_identity["app_id"],
                       "--k256-pubkey", meta["k256_pubkey"], "--compose", compose, "--out", auth_bundle, env])
            harness.expect(r.rc == 0, r)
            r = h.run([h.dstack, "kms", "decrypt-env", "--keys", keys_file, "--app-id", app_identity["app_id"],
                       "--compose", compose, auth_bundle])
            harness.expect(r.rc == 0 and json.loads(r.out)["env"][0]["value"] == "s3cret", r)
            other_compose = os.path.join(h.tmp, "other-compose.json")
            with open(other_compose, "w") as f:
                f.write('{"name":"other"}')
            r = h.run([h.dstack, "kms", "decrypt-env", "--keys", keys_file, "--app-id", app_identity["app_id"],
                       "--compose", other_compose, auth_bundle])
            harness.expect(r.rc != 0 and "made for compose hash" in r.err, r)
            r = h.run([h.dstack, "kms", "decrypt-env", "--keys", keys_file, "--app-id", app_identity["app_id"],
                       "--compose", compose, "--require-authenticated", bundle])
            harness.expect(r.rc != 0 and "requires authenticated env" in r.err, r)

        with h.case("policy: an app that is not listed is denied, naming the rule; nothing released"):
            write_policy(policy, [kms_identity, kms2_identity], [])
            r = get_app_key(h, server, app_agent)
            harness.expect(r.rc != 0 and "App not allowed" in r.err and "is not in apps" in r.err and "k256_key" not in r.out, r)

        with h.case("policy: replaced by garbage, the old policy stays in force"):
            write_policy(policy, [kms_identity, kms2_identity], [app_identity])
            harness.expect(get_app_key(h, server, app_agent).rc == 0, "allowed app refused")
            with open(policy + ".tmp", "w") as f:
                f.write("{not json")
            os.replace(policy + ".tmp", policy)
            r = get_app_key(h, server, app_agent)
            harness.expect(r.rc == 0, f"a garbage policy file changed the decision: {r}")
            write_policy(policy, [kms_identity, kms2_identity], [app_identity])

        with h.case("attack: a quote from an untrusted root is refused ('invalid quote')"):
            other = Platform(h, "other-platform")
            rogue = other.agent_dir("rogue-agent")
            with agent(h, rogue, "rogue agent"):
                r = get_app_key(h, server, rogue)
                harness.expect(r.rc != 0 and "invalid quote" in r.err and "k256_key" not in r.out, r)

        with h.case("attack: a certificate whose quote commits to another key is refused"):
            status, text = attack_unbound_key(h, server, app_agent, temp)
            harness.expect(status == 400 and "invalid quote" in text and "certificate key" in text, f"{status} {text[:300]}")

        with h.case("attack: a tampered event log (another compose hash) is refused: RTMR3 does not replay"):
            status, text = attack_tampered_log(h, server, app_agent, temp, app_identity["compose_hash"])
            harness.expect(status == 400 and "invalid quote" in text and "RTMR3" in text, f"{status} {text[:300]}")

        with h.case("attack: a debug TD with the app's measurements is refused ('debug')"):
            status, text = attack_debug_td(h, server, app_agent, temp, platform)
            harness.expect(status == 400 and "invalid quote" in text and "debug mode" in text.lower(), f"{status} {text[:300]}")

        with h.case("attack: another app's certificate replayed without its key: no TLS session, nothing released"):
            work = h.tmpdir("replay")
            key_a, spki_a = openssl_key(work, "a.key")
            key_b, _ = openssl_key(work, "b.key")
            cert_a = ratls_cert(h, work, key_a, agent_attestation(h, app_agent, hashlib.sha512(b"ratls-cert:" + spki_a).hexdigest()),
                                temp, "a")
            status, text = get_app_key_with(h, server, cert_a, key_a)
            harness.expect(status == 200 and "k256_key" in text, f"the genuine certificate was refused: {status} {text[:200]}")
            r = h.run(["curl", "-sS", "-k", "--max-time", "20", "--cert", cert_a, "--key", key_b,
                       f"{kms_url(server)}/prpc/GetAppKey?json", "-H", "Content-Type: application/json", "-d", "{}"])
            harness.expect(r.rc != 0 and "k256_key" not in r.out, r)

    with h.case("Onboard API: a KMS without keys serves Onboard over plain HTTP; Bootstrap, /finish, then the RA-TLS service (kms.toml)"):
        fresh = h.tmpdir("onboard-certs")
        onboard_port, rpc_port = free_port(), free_port()
        toml = os.path.join(h.tmp, "kms.toml")
        with open(toml, "w") as f:
            f.write(f"""[rpc]\naddress = "127.0.0.1"\nport = {rpc_port}\n\n[core]\ncert_dir = "{fresh}"\n\n"""
                    f"""[core.auth_api]\ntype = "policy"\n\n[core.auth_api.policy]\nfile = "{policy}"\n\n"""
                    f"""[core.onboard]\nenabled = true\naddress = "127.0.0.1"\nport = {onboard_port}\n\n"""
                    f"""[core.attestation]\ninsecure_allow_external_trust_anchors = true\ncollateral_file = "{platform.collateral}"\n"""
                    f"""\n[core.attestation.root_ca]\ntdx = "{platform.root}"\n""")
        cmd = [h.dstack, "kms", "--config", toml, "--agent", agent_socket(kms_agent)]
        with h.server(cmd, name="kms (onboarding)", timeout=30) as server:
            harness.expect(server.address.port == onboard_port, server.address)
            base = f"http://127.0.0.1:{onboard_port}"
            status, text = h.curl(base + "/finish")
            harness.expect(status == 409, f"/finish before keys: {status} {text}")
            body = os.path.join(h.tmp, "bootstrap.json")
            with open(body, "w") as f:
                json.dump({"domain": "127.0.0.1"}, f)
            status, text = h.curl(base + "/prpc/Onboard.Bootstrap?json", data_file=body, headers=["Content-Type: application/json"])
            harness.expect(status == 200 and len(bytes.fromhex(json.loads(text)["k256_pubkey"])) == 33, f"{status} {text[:300]}")
            status, text = h.curl(base + "/prpc/Onboard.Bootstrap?json", data_file=body, headers=["Content-Type: application/json"])
            harness.expect(status == 400 and "already been bootstrapped" in text, f"{status} {text[:300]}")
            status, text = h.curl(base + "/finish")
            harness.expect(status == 200 and text == "OK", f"{status} {text}")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                r = h.run(["curl", "-sS", "-k", "--max-time", "5", f"https://127.0.0.1:{rpc_port}/health"], timeout=10)
                if r.rc == 0:
                    break
                time.sleep(0.2)
            harness.expect(r.rc == 0 and r.out == "OK", f"the RA-TLS service did not come up after /finish: {r}")
            harness.expect(os.path.exists(os.path.join(fresh, "bootstrap-info.json")), "no bootstrap-info.json")

    with h.case("TCB: an OutOfDate platform is refused by default ('policy.tcb'), then by the policy's allowedTcbStatuses"):
        outdated = os.path.join(h.tmp, "collateral-outofdate.json")
        r = h.run([h.dstack, "verify", "sim", "collateral", os.path.join(kms_agent, "tee"), "-o", outdated,
                   "--status", "OutOfDate"])
        harness.expect(r.rc == 0, r)
        with kms_server(h, certs, platform, kms_agent, *policy_flags, "--no-self-authorization", collateral=outdated,
                        name="kms (OutOfDate collateral)") as server:
            r = get_app_key(h, server, app_agent)
            harness.expect(r.rc != 0 and "invalid quote" in r.err and "OutOfDate" in r.err and "k256_key" not in r.out, r)
        with kms_server(h, certs, platform, kms_agent, *policy_flags, "--no-self-authorization", "--allow-tcb-status",
                        "UpToDate", "--allow-tcb-status", "OutOfDate", collateral=outdated,
                        name="kms (OutOfDate allowed locally)") as server:
            r = get_app_key(h, server, app_agent)
            harness.expect(r.rc != 0 and "allowedTcbStatuses" in r.err and "k256_key" not in r.out, r)

    with h.case("admin: ClearImageCache needs the token (401 without, null with it); '../x' is refused"):
        token = os.path.join(h.tmp, "admin-token")
        with open(token, "w") as f:
            f.write("s3cret-token\n")
        os.chmod(token, 0o600)
        admin_port = free_port()
        with kms_server(h, certs, platform, kms_agent, *policy_flags, "--admin-listen", f"127.0.0.1:{admin_port}",
                        "--admin-token-file", token, name="kms (admin)", count=2) as server:
            url = f"http://127.0.0.1:{admin_port}/prpc/Admin.ClearImageCache?json"
            body = os.path.join(h.tmp, "clear.json")
            with open(body, "w") as f:
                json.dump({"image_hash": "ab12"}, f)
            status, text = h.curl(url, data_file=body, headers=["Content-Type: application/json"])
            harness.expect(status == 401, f"{status} {text}")
            status, text = h.curl(url, data_file=body, headers=["Content-Type: application/json",
                                                                 "Authorization: Bearer s3cret-token"])
            harness.expect(status == 200 and text.strip() == "null", f"{status} {text}")
            with open(body, "w") as f:
                json.dump({"image_hash": "../x"}, f)
            status, text = h.curl(url, data_file=body, headers=["Content-Type: application/json", "X-Admin-Token: s3cret-token"])
            harness.expect(status == 400 and "invalid cache key" in text, f"{status} {text}")

    with h.case("webhook: allow, deny with its reason, down and slow: denied within the timeout"):
        decisions = {"app": True}

        def decide(path, body):
            if path.endswith("/bootAuth/kms"):
                return 200, {"isAllowed": True, "gatewayAppId": "hook-gateway", "reason": ""}
            if decisions["app"]:
                return 200, {"isAllowed": True, "gatewayAppId": "hook-gateway", "reason": ""}
            return 200, {"isAllowed": False, "gatewayAppId": "", "reason": "compose hash revoked"}

        hook = Webhook(decide)
        try:
            flags = ["--auth", "webhook", "--auth-webhook", hook.url, "--auth-timeout", "1"]
            with kms_server(h, certs, platform, kms_agent, *flags, name="kms (webhook)") as server:
                keys = app_keys(h, server, app_agent)
                harness.expect(keys["gateway_app_id"] == "hook-gateway", keys)
                routes = [path for path, _ in hook.requests]
                harness.expect("/bootAuth/app" in routes and "/bootAuth/kms" in routes, routes)
                body = [b for p, b in hook.requests if p == "/bootAuth/app"][-1]
                harness.expect(body["appId"] == app_identity["app_id"] and body["composeHash"] == app_identity["compose_hash"]
                               and body["tcbStatus"] == "UpToDate", body)
                decisions["app"] = False
                r = get_app_key(h, server, app_agent)
                harness.expect(r.rc != 0 and "compose hash revoked" in r.err, r)
                decisions["app"] = True
                # The webhook answers after 6 s; the KMS gives up after 1 s (the bound leaves slack for a slow machine).
                hook.delay = 6
                started = time.monotonic()
                r = get_app_key(h, server, app_agent)
                elapsed = time.monotonic() - started
                harness.expect(r.rc != 0 and "timed out" in r.err and elapsed < 5, f"{elapsed:.1f} s: {r}")
                hook.delay = 0
                hook.close()
                r = get_app_key(h, server, app_agent)
                harness.expect(r.rc != 0 and "k256_key" not in r.out, f"a webhook that is down allowed: {r}")
        finally:
            try:
                hook.close()
            except Exception:
                pass


def openssl_key(work, name):
    key = os.path.join(work, name)
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key], capture_output=True,
                   check=True)
    spki = subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"], capture_output=True,
                          check=True).stdout
    return key, spki


def agent_attestation(h, app_agent, report_hex):
    sock = os.path.join(app_agent, "dstack.sock")
    r = h.run(["curl", "-sS", "--unix-socket", sock, "-X", "POST", "-H", "Content-Type: application/json",
               "-d", json.dumps({"report_data": report_hex}), "http://localhost/Attest"])
    return bytes.fromhex(json.loads(r.out)["attestation"])


def ratls_cert(h, work, key, attestation, temp, name):
    """An RA-TLS client certificate for `key` carrying `attestation`, signed by the KMS's temp CA (openssl)."""
    run = lambda *cmd: subprocess.run(cmd, capture_output=True, check=True)
    inner = b"\x04" + der_length(len(attestation)) + attestation
    for file, pem in [("ca.crt", temp["temp_ca_cert"]), ("ca.key", temp["temp_ca_key"])]:
        with open(os.path.join(work, file), "w") as f:
            f.write(pem)
    ext = os.path.join(work, name + ".cnf")
    with open(ext, "w") as f:
        f.write(f"[ext]\n1.3.6.1.4.1.62397.1.8=DER:{inner.hex()}\n")
    csr, cert = os.path.join(work, name + ".csr"), os.path.join(work, name + ".crt")
    run("openssl", "req", "-new", "-key", key, "-subj", "/CN=RA-TLS TEMP Cert", "-out", csr)
    run("openssl", "x509", "-req", "-in", csr, "-CA", os.path.join(work, "ca.crt"), "-CAkey", os.path.join(work, "ca.key"),
        "-CAcreateserial", "-days", "1", "-extfile", ext, "-extensions", "ext", "-out", cert)
    return cert


def get_app_key_with(h, server, cert, key):
    return curl_kms(h, server, "GetAppKey", {"api_version": 1, "vm_config": ""}, extra=["--cert", cert, "--key", key])


def attack_unbound_key(h, server, app_agent, temp):
    """The app's genuine attestation, made for key A, in a certificate of key B."""
    work = h.tmpdir("unbound")
    key_a, spki_a = openssl_key(work, "a.key")
    key_b, _ = openssl_key(work, "b.key")
    attestation = agent_attestation(h, app_agent, hashlib.sha512(b"ratls-cert:" + spki_a).hexdigest())
    cert = ratls_cert(h, work, key_b, attestation, temp, "b")
    return get_app_key_with(h, server, cert, key_b)


def attack_tampered_log(h, server, app_agent, temp, compose_hash_hex):
    """A bound attestation whose compose-hash event payload was changed (everywhere it appears)."""
    work = h.tmpdir("tampered")
    key, spki = openssl_key(work, "k.key")
    attestation = agent_attestation(h, app_agent, hashlib.sha512(b"ratls-cert:" + spki).hexdigest())
    original = bytes.fromhex(compose_hash_hex)
    harness.expect(original in attestation, "the compose hash is not in the attestation")
    forged = attestation.replace(original, bytes(b ^ 0xff for b in original))
    cert = ratls_cert(h, work, key, forged, temp, "k")
    return get_app_key_with(h, server, cert, key)


def attack_debug_td(h, server, app_agent, temp, platform):
    """The same TD measurements and report data in a quote whose TD is in debug mode (the same simulated PKI)."""
    work = h.tmpdir("debug")
    key, spki = openssl_key(work, "k.key")
    report = hashlib.sha512(b"ratls-cert:" + spki).hexdigest()
    attestation = agent_attestation(h, app_agent, report)
    path = os.path.join(work, "attestation.bin")
    with open(path, "wb") as f:
        f.write(attestation)
    quote = verify_json(h, platform, path)["quote"]
    pki = os.path.join(platform.agents[0], "tee")
    out = os.path.join(work, "debug-quote.bin")
    r = h.run([h.dstack, "verify", "sim", "quote", pki, "-o", out, "--debug", "--report-data", report,
               "--mrtd", quote["mr_td"], "--rtmr0", quote["rt_mr0"], "--rtmr1", quote["rt_mr1"], "--rtmr2", quote["rt_mr2"],
               "--rtmr3", quote["rt_mr3"], "--mr-config-id", quote["mr_config_id"]])
    harness.expect(r.rc == 0, r)
    with open(out, "rb") as f:
        debug_quote = f.read()
    # The V0 attestation holds the quote as a SCALE byte vector right after its two tag bytes.
    prefix = attestation[:2]
    length_and_quote = attestation[2:]
    old_len_prefix = scale_compact(len(debug_quote))
    harness.expect(length_and_quote[:len(old_len_prefix)] == old_len_prefix,
                   "the debug quote differs in length from the agent's (cannot splice)")
    forged = prefix + old_len_prefix + debug_quote + length_and_quote[len(old_len_prefix) + len(debug_quote):]
    cert = ratls_cert(h, work, key, forged, temp, "k")
    return get_app_key_with(h, server, cert, key)


def scale_compact(n):
    if n < 1 << 6:
        return bytes([n << 2])
    if n < 1 << 14:
        return ((n << 2) | 1).to_bytes(2, "little")
    if n < 1 << 30:
        return ((n << 2) | 2).to_bytes(4, "little")
    body = n.to_bytes((n.bit_length() + 7) // 8, "little")
    return bytes([((len(body) - 4) << 2) | 3]) + body


def scale_bytes(b):
    return scale_compact(len(b)) + b


def sign_cert(h, server, app_agent):
    """What upstream's cert-client sends: SCALE(CertSigningRequestV2), signed (DER ECDSA) by the leaf key."""
    work = h.tmpdir("csr")
    key = os.path.join(work, "leaf.key")
    run = lambda *cmd, **kw: subprocess.run(cmd, capture_output=True, check=True, **kw)
    run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
    spki = run("openssl", "pkey", "-in", key, "-pubout", "-outform", "DER").stdout
    sock = os.path.join(app_agent, "dstack.sock")
    r = h.run(["curl", "-sS", "--unix-socket", sock, "-X", "POST", "-H", "Content-Type: application/json",
               "-d", json.dumps({"report_data": hashlib.sha512(b"ratls-cert:" + spki).hexdigest()}), "http://localhost/Attest"])
    attestation = bytes.fromhex(json.loads(r.out)["attestation"])
    config = (b"\x00" + scale_bytes(b"app.example") + scale_compact(1) + scale_bytes(b"app.example")
              + b"\x01\x00\x01\x01" + b"\x00\x00")
    csr = scale_bytes(b"please sign cert:") + scale_bytes(spki) + config + attestation
    csr_file = os.path.join(work, "csr.bin")
    with open(csr_file, "wb") as f:
        f.write(csr)
    signature = run("openssl", "dgst", "-sha256", "-sign", key, csr_file).stdout
    status, text = curl_kms(h, server, "SignCert", {"api_version": 2, "csr": csr.hex(), "signature": signature.hex(),
                                                    "vm_config": ""})
    harness.expect(status == 200, f"{status} {text[:400]}")
    return json.loads(text)["certificate_chain"]


def verify_ratls(h, platform, chain):
    path = os.path.join(h.tmp, "ratls-chain.pem")
    with open(path, "w") as f:
        f.write("".join(chain[:2]))
    return h.run([h.dstack, "verify", *attestation_flags(platform), path])


def der_length(n):
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def curl_kms_path(h, server, path):
    r = h.run(["curl", "-sS", "-k", "--max-time", "20", "-w", "\n%{http_code}", f"{kms_url(server)}{path}"], timeout=30)
    harness.expect(r.rc == 0, r)
    text, _, status = r.out.rpartition("\n")
    return int(status), text


def parse_prometheus(text):
    """The metrics through the Prometheus project's own text parser (Debian's python3-prometheus-client,
    run by the system's Python, which has it)."""
    script = ("import json, sys\n"
              "from prometheus_client.parser import text_string_to_metric_families\n"
              "values = {}\n"
              "for family in text_string_to_metric_families(sys.stdin.read()):\n"
              "    for sample in family.samples:\n"
              "        values.setdefault(family.name, sample.value)\n"
              "print(json.dumps(values))\n")
    r = subprocess.run(["/usr/bin/python3", "-c", script], input=text, capture_output=True, text=True, timeout=30)
    harness.expect(r.returncode == 0, f"the Prometheus parser refused the metrics: {r.stderr[-600:]}")
    return json.loads(r.stdout)


def bytes_of_spki(h, meta):
    path = os.path.join(h.tmp, "meta-ca.pem")
    with open(path, "w") as f:
        f.write(meta["ca_cert"])
    pub = subprocess.run(["openssl", "x509", "-in", path, "-pubkey", "-noout"], capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub, capture_output=True, check=True).stdout
    return der.hex()


def keccak256(data):
    """Keccak-256 with the original padding (0x01), as Ethereum and dstack use it (not SHA3-256)."""
    rc = [0x0000000000000001, 0x0000000000008082, 0x800000000000808A, 0x8000000080008000, 0x000000000000808B,
          0x0000000080000001, 0x8000000080008081, 0x8000000000008009, 0x000000000000008A, 0x0000000000000088,
          0x0000000080008009, 0x000000008000000A, 0x000000008000808B, 0x800000000000008B, 0x8000000000008089,
          0x8000000000008003, 0x8000000000008002, 0x8000000000000080, 0x000000000000800A, 0x800000008000000A,
          0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008]
    rot = [[0, 36, 3, 41, 18], [1, 44, 10, 45, 2], [62, 6, 43, 15, 61], [28, 55, 25, 21, 56], [27, 20, 39, 8, 14]]
    mask = (1 << 64) - 1

    def rol(v, n):
        return ((v << n) | (v >> (64 - n))) & mask if n else v

    rate = 136
    padded = bytearray(data) + b"\x01" + bytes((-len(data) - 2) % rate) + b"\x80"
    if len(padded) % rate:  # len(data) + 1 was already a multiple: 0x01 and 0x80 share a byte
        padded = bytearray(data) + b"\x81"
    state = [[0] * 5 for _ in range(5)]
    for offset in range(0, len(padded), rate):
        block = padded[offset:offset + rate]
        for i in range(rate // 8):
            state[i % 5][i // 5] ^= int.from_bytes(block[8 * i:8 * i + 8], "little")
        for round_constant in rc:
            c = [state[x][0] ^ state[x][1] ^ state[x][2] ^ state[x][3] ^ state[x][4] for x in range(5)]
            d = [c[(x - 1) % 5] ^ rol(c[(x + 1) % 5], 1) for x in range(5)]
            state = [[state[x][y] ^ d[x] for y in range(5)] for x in range(5)]
            b = [[0] * 5 for _ in range(5)]
            for x in range(5):
                for y in range(5):
                    b[y][(2 * x + 3 * y) % 5] = rol(state[x][y], rot[x][y])
            state = [[b[x][y] ^ (~b[(x + 1) % 5][y] & b[(x + 2) % 5][y]) for y in range(5)] for x in range(5)]
            state[0][0] ^= round_constant
    return b"".join(state[i % 5][i // 5].to_bytes(8, "little") for i in range(4))


def keccak_bootstrap(ca_pubkey_hex, k256_hex):
    return keccak256(b"dstack-kms-genereted-keys-v1:" + ca_pubkey_hex.encode() + b";" + k256_hex.encode() + b";")


if __name__ == "__main__":
    harness.main(main, needs=["curl", "openssl"])
