#!/usr/bin/env python3
"""RegisterCvm end to end with the simulated TEE: a KMS, a gateway CVM and an app CVM, each with a
`dstack agent --simulator` of its own whose keys come from the KMS. The gateway takes its RPC
certificate from its agent (--rpc-domain: RA-TLS, signed by the KMS) and checks CVMs' client
certificates against the KMS root CA; the app registers with `dstack gateway register` (the
guest side), which checks the gateway's certificate for the gateway app id. Forged and missing
client certificates are refused.

    test_gateway_cvm.py BUILD_DIR
"""

import json
import os
import socket
import stat

import harness
from test_kms import Platform, agent, agent_socket, attestation_flags, kms_server, identity_of, write_policy, app_keys


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kms_backed_agent(h, platform, name, keys):
    """A new simulated CVM whose app keys are `keys` (from the KMS)."""
    path = platform.agent_dir(name)
    with open(os.path.join(path, "appkeys.json"), "w") as f:
        json.dump(keys, f)
    return path


def main(h):
    platform = Platform(h, "platform")
    kms_agent = platform.agent_dir("kms-agent")
    with agent(h, kms_agent, "kms agent"):
        gw0, app0 = platform.agent_dir("gateway-boot"), platform.agent_dir("app-boot")
        with agent(h, gw0, "gateway boot agent"), agent(h, app0, "app boot agent"):
            run(h, platform, kms_agent, gw0, app0)


def run(h, platform, kms_agent, gw0, app0):
    kms_identity = identity_of(h, platform, kms_agent)
    identities = [identity_of(h, platform, gw0), identity_of(h, platform, app0)]
    policy = os.path.join(h.tmp, "policy.json")
    write_policy(policy, [kms_identity], identities)
    policy_flags = ["--auth", "policy", "--auth-policy", policy]
    certs = h.tmpdir("kms-certs")
    r = h.run([h.dstack, "kms", "bootstrap", "--cert-dir", certs, "--domain", "127.0.0.1", "--agent", agent_socket(kms_agent),
               *attestation_flags(platform), *policy_flags])
    harness.expect(r.rc == 0, r)
    with kms_server(h, certs, platform, kms_agent, *policy_flags) as kms:
        gw_keys, app_keys_ = app_keys(h, kms, gw0), app_keys(h, kms, app0)
        gw1 = kms_backed_agent(h, platform, "gateway-cvm", gw_keys)
        app1 = kms_backed_agent(h, platform, "app-cvm", app_keys_)
        with agent(h, gw1, "gateway cvm agent"), agent(h, app1, "app cvm agent"):
            gw_identity, app_identity = identity_of(h, platform, gw1), identity_of(h, platform, app1)
            write_policy(policy, [kms_identity], identities + [gw_identity, app_identity])
            with_gateway(h, gw1, app1, gw_identity, app_identity)


def with_gateway(h, gw_agent, app_agent, gw_identity, app_identity):
    data = h.tmpdir("gateway-data")
    token_file = os.path.join(h.tmp, "admin-token")
    with open(token_file, "w") as f:
        f.write("admin-secret\n")
    cmd = [h.dstack, "gateway", "serve", "--proxy-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--admin-listen",
           "127.0.0.1:0", "--admin-token-file", token_file, "--rpc-domain", "127.0.0.1", "--agent", agent_socket(gw_agent),
           "--base-domain", "gw.test", "--no-wireguard", "--data-dir", data, "--wg-endpoint", "203.0.113.7:51820"]
    with h.server(cmd, count=3, name="gateway", timeout=60) as gw:
        rpc, adm = gw.addresses[1], gw.addresses[2]
        url = f"https://127.0.0.1:{rpc.port}"
        wg_config = os.path.join(h.tmp, "dstack-wg0.conf")
        wg_key = os.path.join(h.tmp, "wg.key")
        policy = json.dumps({"ports": [{"port": 8080, "pp": False}], "restrict_mode": True})
        register = [h.dstack, "gateway", "register", "--gateway", url, "--agent", agent_socket(app_agent), "--wg-key-file",
                    wg_key, "--port-policy", policy, "--wg-config-out", wg_config]

        with h.case("the gateway's RPC certificate comes from its agent: [leaf, app CA, KMS root] verified by openssl, for --rpc-domain"):
            r = h.run(["openssl", "s_client", "-connect", f"127.0.0.1:{rpc.port}", "-showcerts"], stdin="", timeout=20)
            pems = []
            text = r.out
            while "-----BEGIN CERTIFICATE-----" in text:
                start = text.index("-----BEGIN CERTIFICATE-----")
                end = text.index("-----END CERTIFICATE-----", start) + 25
                pems.append(text[start:end] + "\n")
                text = text[end:]
            harness.expect(len(pems) == 3, f"{len(pems)} certificates: {r}")
            names = []
            for i, pem in enumerate(pems):
                names.append(os.path.join(h.tmp, f"gw-rpc-{i}.pem"))
                with open(names[-1], "w") as f:
                    f.write(pem)
            v = h.run(["openssl", "verify", "-CAfile", names[2], "-untrusted", names[1], names[0]])
            harness.expect(v.rc == 0 and "OK" in v.out, v)
            x = h.run(["openssl", "x509", "-in", names[0], "-noout", "-ext", "subjectAltName"])
            harness.expect("127.0.0.1" in x.out, x)

        with h.case("RegisterCvm from the app CVM: its app and instance id from the KMS-signed certificate, a pool address"):
            r = h.run([*register, "--gateway-app-id", gw_identity["app_id"]], timeout=60)
            harness.expect(r.rc == 0, r)
            answer = json.loads(r.out)
            harness.expect(answer["client_ip"] == "10.0.0.2", answer)
            harness.expect(len(answer["servers"]) == 1 and answer["servers"][0]["endpoint"] == "203.0.113.7:51820", answer)
            harness.expect(answer["servers"][0]["ip"] == "10.0.0.1/24" and answer["domain"] == "gw.test", answer)
            status = harness.http_request(adm, "POST", "/prpc/Admin.Status?json", b"{}", {"X-Admin-Token": "admin-secret"})
            hosts = status.json()["hosts"]
            harness.expect(len(hosts) == 1, hosts)
            harness.expect(hosts[0]["app_id"] == app_identity["app_id"], f"{hosts[0]} vs {app_identity['app_id']}")
            harness.expect(hosts[0]["instance_id"] == app_identity["instance_id"], hosts[0])
            harness.expect(hosts[0]["port_policy"] == "restricted: 8080" and hosts[0]["port_policy_source"] == "instance", hosts[0])

        with h.case("the CVM's WireGuard configuration: 0600, its /32, the gateway as the one peer"):
            mode = stat.S_IMODE(os.stat(wg_config).st_mode)
            harness.expect(mode == 0o600, oct(mode))
            with open(wg_config) as f:
                text = f.read()
            harness.expect("Address = 10.0.0.2/32" in text and "AllowedIPs = 10.0.0.1/32" in text, text)
            harness.expect("Endpoint = 203.0.113.7:51820" in text and "PersistentKeepalive = 25" in text, text)
            harness.expect(stat.S_IMODE(os.stat(wg_key).st_mode) == 0o600, "wg.key is not 0600")

        with h.case("registering again (every 3 minutes upstream) keeps the address"):
            r = h.run([*register, "--gateway-app-id", "any"], timeout=60)
            harness.expect(r.rc == 0 and json.loads(r.out)["client_ip"] == "10.0.0.2", r)

        with h.case("the CVM refuses a gateway whose certificate names another app"):
            r = h.run([*register, "--gateway-app-id", "ab" * 20], timeout=60)
            harness.expect(r.rc != 0 and "not the gateway app" in r.err, r)

        with h.case("without a client certificate: 400 'no attestation provided' (what old CVMs look for)"):
            r = h.run(["curl", "-sS", "-k", "-w", "\n%{http_code}", "-H", "Content-Type: application/json", "--data-binary",
                       json.dumps({"client_public_key": "AQ" * 21 + "A="}), f"{url}/prpc/RegisterCvm?json"], timeout=30)
            harness.expect(r.out.endswith("400") and "no attestation provided" in r.out, r)

        with h.case("a client certificate not signed by the KMS is refused in the handshake"):
            key = os.path.join(h.tmp, "forged.key")
            crt = os.path.join(h.tmp, "forged.crt")
            g = h.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                       key, "-out", crt, "-days", "2", "-subj", "/CN=dstack-guest-agent"])
            harness.expect(g.rc == 0, g)
            r = h.run(["curl", "-sS", "-k", "--cert", crt, "--key", key, "-H", "Content-Type: application/json",
                       "--data-binary", "{}", f"{url}/prpc/RegisterCvm?json"], timeout=30)
            harness.expect(r.rc != 0, f"a forged certificate got an answer: {r}")

        with h.case("Info and AcmeInfo over the RA-TLS RPC (no client certificate needed)"):
            r = h.run(["curl", "-sS", "-k", "-X", "POST", "-d", "{}", f"{url}/prpc/Info?json"], timeout=30)
            harness.expect(json.loads(r.out)["base_domain"] == "gw.test", r)
            r = h.run(["curl", "-sS", "-k", "-X", "POST", "-d", "{}", f"{url}/prpc/AcmeInfo?json"], timeout=30)
            harness.expect("quoted_hist_keys" in json.loads(r.out), r)

        with h.case("certificate keys in the store are sealed with the key the gateway's agent derives (KMS-backed)"):
            status = harness.http_request(adm, "POST", "/prpc/Admin.Status?json", b"{}", {"X-Admin-Token": "admin-secret"})
            harness.expect(status.json()["certificate_keys_sealed"] is True, status.json())


if __name__ == "__main__":
    harness.main(main, needs=["curl", "openssl"])
