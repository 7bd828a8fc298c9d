#!/usr/bin/env python3
"""The daemon plumbing every applet shares, through `dstack verify serve` (the first daemon):
a graceful stop on SIGTERM (idle connections closed, a request in flight answered, exit 0), a
second signal stopping at once, --config with upstream's dstack-verifier keys (flags win, unknown
keys warned), --log-level / --log-format, and usage errors that point to --help. Loopback only;
no vectors needed (the PCCS named is a closed local port: nothing is fetched).
"""

import json
import os
import signal
import socket
import time

import harness

NO_PCCS = "http://127.0.0.1:9"  # the discard port: closed here, and never asked in these tests


def serve_cmd(h, *extra):
    return [h.dstack, "verify", "serve", "--listen", "127.0.0.1:0", "--pccs", NO_PCCS, "--skip-os-image", *extra]


def wait_closed(sock, seconds):
    """Seconds until the peer closed the connection, or None if it stayed open."""
    sock.settimeout(0.1)
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - start
        except socket.timeout:
            continue
        except ConnectionResetError:
            return time.monotonic() - start
    return None


def wait_exit(proc, seconds):
    try:
        return proc.wait(timeout=seconds)
    except Exception:
        return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(h):
    with h.case("SIGTERM: the idle connection is closed, the request in flight answered, exit 0"):
        with h.server(serve_cmd(h), check_exit=False) as server:
            idle = harness.connect(server.address)
            idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            h.expect(b"200" in idle.recv(4096).split(b"\r\n")[0], "the idle connection's first answer")
            busy = harness.connect(server.address)
            body = b"{}"
            busy.sendall(b"POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                         % len(body) + body[:1])
            time.sleep(0.2)
            server.proc.send_signal(signal.SIGTERM)
            closed_after = wait_closed(idle, 3)
            h.expect(closed_after is not None, "the idle keep-alive connection stayed open after SIGTERM")
            h.expect(server.proc.poll() is None, "the server exited with a request in flight")
            busy.sendall(body[1:])
            raw = harness.read_until_close(busy)
            h.expect(harness.http_status(raw) == 200, f"the request in flight got {raw[:80]!r}")
            h.expect(b"Connection: close\r\n" in raw, "its response does not say Connection: close")
            answer = json.loads(harness.http_body(raw))
            h.expect(answer["is_valid"] is False and "Quote is required" in answer["reason"], answer)
            rc = wait_exit(server.proc, 5)
            h.expect(rc == 0, f"exit status {rc} after the graceful stop")
            h.expect("stopping" in server.log_tail(), "the log does not say it is stopping")

    with h.case("a second SIGTERM stops at once, without waiting for a stalled request"):
        with h.server(serve_cmd(h), check_exit=False) as server:
            stalled = harness.connect(server.address)
            stalled.sendall(b"POST /verify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            time.sleep(0.2)
            server.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            h.expect(server.proc.poll() is None, "the first signal did not wait for the request in flight")
            start = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            rc = wait_exit(server.proc, 5)
            h.expect(rc is not None and time.monotonic() - start < 3, "the second signal did not stop it at once")
            stalled.close()

    with h.case("SIGTERM right after the listening line: a graceful stop (exit 0) every time, never a kill"):
        import subprocess
        for attempt in range(20):
            proc = subprocess.Popen(serve_cmd(h), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            try:
                line = proc.stdout.readline()
                h.expect("listening on" in line, f"attempt {attempt}: {line!r}")
                proc.send_signal(signal.SIGTERM)
                rc = wait_exit(proc, 10)
                h.expect(rc == 0, f"attempt {attempt}: exit status {rc} (a negative one is death by the signal)")
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

    with h.group("--config"):
        port = free_port()
        config = os.path.join(h.tmp, "dstack-verifier.toml")
        with open(config, "w") as f:
            f.write(f'address = "127.0.0.1"\nport = {port}\nimage_download_url = "http://x/{{OS_IMAGE_HASH}}"\n'
                    f'typo_kye = 1\n[attestation.urls]\npccs = "{NO_PCCS}"\n')
        cmd = [h.dstack, "verify", "serve", "--config", config, "--skip-os-image"]
        with h.server(cmd, name="verify serve --config") as server:
            h.check("--config: address and port give the listening address",
                    server.address.port == port, server.stdout_lines)
            response = harness.http_request(server.address, "GET", "/health")
            h.check("--config: the server answers", response.status == 200, response.status)
            log = server.log_tail()
            h.check("--config: an unknown key is warned about", "unknown key 'typo_kye'" in log, log)
            h.check("--config: an upstream key this verifier has no use for is named as unused",
                    "'image_download_url' is accepted and not used" in log, log)

        r = h.run([h.dstack, "verify", "serve", "--config", config, "--listen", "127.0.0.1:0", "--collateral", config])
        h.check("--config: a file's --pccs and a command line's --collateral conflict (exit 2)",
                r.rc == 2 and "give --collateral or --pccs, not both" in r.err, r)

        rooted = os.path.join(h.tmp, "rooted.toml")
        with open(rooted, "w") as f:
            f.write('port = 1\n[attestation.root_ca]\ntdx = "/nonexistent.pem"\n')
        r = h.run([h.dstack, "verify", "serve", "--config", rooted])
        h.check("--config: a root CA from the file needs insecure_allow_external_trust_anchors (exit 2)",
                r.rc == 2 and "insecure_allow_external_trust_anchors" in r.err, r)

        bad = os.path.join(h.tmp, "bad.toml")
        with open(bad, "w") as f:
            f.write("port = [\n")
        r = h.run([h.dstack, "verify", "serve", "--config", bad])
        h.check("--config: a TOML syntax error names the file and line (exit 2)",
                r.rc == 2 and "bad.toml:" in r.err, r)

        crash = os.path.join(h.tmp, "brackets.toml")
        with open(crash, "w") as f:
            f.write("[[[\n")
        r = h.run([h.dstack, "verify", "serve", "--config", crash])
        h.check("--config: a '[[[' header (toml++ aborts on it) is a usage error, not a crash (exit 2)",
                r.rc == 2 and "[[[" in r.err, r)

    with h.group("logging flags"):
        with h.server(serve_cmd(h, "--log-format", "json"), name="verify serve --log-format json") as server:
            pass
        lines = [line for line in server.log_tail().splitlines() if line.strip()]
        parsed = []
        for line in lines:
            try:
                parsed.append(json.loads(line))
            except ValueError:
                pass
        h.check("--log-format json: every log line is a JSON object", lines and len(parsed) == len(lines), lines)
        h.check("--log-format json: lines name the service", all(p.get("component") == "dstack-verifier" for p in parsed), parsed)
        with h.server(serve_cmd(h, "--log-level", "error"), name="verify serve --log-level error") as server:
            pass
        h.check("--log-level error: no warnings or info lines", "warn" not in server.log_tail().lower(), server.log_tail())
        r = h.run(serve_cmd(h, "--log-level", "chatty"))
        h.check("--log-level: an unknown level is a usage error (exit 2)", r.rc == 2 and "--log-level" in r.err, r)

    with h.group("usage errors"):
        r = h.run([h.dstack, "verify", "serve", "--no-such-flag"])
        h.check("an unknown flag: exit 2, names it, points to --help",
                r.rc == 2 and "--no-such-flag" in r.err and "(see dstack verify --help)" in r.err, r)
        r = h.run([h.dstack, "verify", "serve"])
        h.check("no --listen and no config: exit 2", r.rc == 2 and "--listen" in r.err, r)
        r = h.run([h.dstack, "verify", "sim"])
        h.check("verify sim without a subcommand: exit 2 naming them", r.rc == 2 and "init, quote or collateral" in r.err, r)
        r = h.run([h.dstack, "agent", "--listen", "x"])
        h.check("agent: an unknown flag: exit 2, points to --help",
                r.rc == 2 and "--listen" in r.err and "(see dstack agent --help)" in r.err, r)
        r = h.run([h.dstack, "kms", "serve", "--no-such-flag"])
        h.check("kms serve: an unknown flag: exit 2, points to --help",
                r.rc == 2 and "--no-such-flag" in r.err and "(see dstack kms --help)" in r.err, r)
        r = h.run([h.dstack, "vmm", "--listen", "x"])
        h.check("vmm: not implemented yet, exit 2", r.rc == 2 and "not implemented yet" in r.err, r)
        r = h.run([h.dstack, "gateway", "--listen", "x", "--no-wireguard", "--data-dir", h.tmpdir("gateway-data")])
        h.check("gateway: a bad --listen address fails naming it", r.rc != 0 and "listen address 'x'" in r.err, r)


if __name__ == "__main__":
    harness.main(main)
