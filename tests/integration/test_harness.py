#!/usr/bin/env python3
"""Tests of harness.py itself: that what it reports is what happened.

usage: python3 tests/integration/test_harness.py BUILD_DIR

Each case writes a small script that uses the harness, runs it against a fake build directory (a
`dstack` that is a shell script) and checks its output lines, its closing count line and its exit
status: failures and crashes are counted as failures, a missing vector is a SKIP and never a pass,
a script that checks nothing fails, a server that never gets ready, dies early or ignores SIGTERM
fails and is gone afterwards, a script stopped by SIGTERM leaves no server behind, a command that
hangs is killed at its timeout, and the HTTP client works over TCP and a unix socket. The build
directory is not used. Python 3 standard library only.
"""

import os
import re
import sys
import textwrap
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# A server for the child scripts: listens on 127.0.0.1:0 or a unix socket, prints where, serves
# GET /hello; its behaviour on start and on SIGTERM is chosen by its first argument.
FAKE_SERVER = r'''
import http.server, os, signal, socketserver, sys, time
mode, where = sys.argv[1], sys.argv[2]
if mode == "silent":
    time.sleep(60)
if mode == "dies":
    sys.exit(3)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = self.client_address[0].encode() if self.path == "/peer" else b"hello " + self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def address_string(self):
        return "client"
    def log_message(self, *args):
        pass

if where == "unix":
    path = sys.argv[3]
    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True
    server = Server(path, Handler)
    print(f"server: listening on unix:{path}", flush=True)
else:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"server: listening on tcp:127.0.0.1:{server.server_address[1]}", flush=True)
print("some chatter on stdout", flush=True)
server.serve_forever()
'''

h = None


def child(tmp, name, body, env=None, timeout=60):
    """Writes a harness script whose main(h) is `body` and runs it on a fake build directory."""
    build = os.path.join(tmp, "fake-build")
    os.makedirs(build, exist_ok=True)
    fake = os.path.join(build, "dstack")
    if not os.path.exists(fake):
        with open(fake, "w") as f:
            f.write("#!/bin/sh\necho fake dstack \"$@\"\n")
        os.chmod(fake, 0o755)
    server = os.path.join(tmp, "fake_server.py")
    if not os.path.exists(server):
        with open(server, "w") as f:
            f.write(FAKE_SERVER)
    script = os.path.join(tmp, name)
    with open(script, "w") as f:
        f.write(f"import os, sys, time\nsys.path.insert(0, {HERE!r})\nimport harness\n"
                f"SERVER = [sys.executable, {server!r}]\n\n"
                f"def main(h):\n{textwrap.indent(textwrap.dedent(body), '    ')}\n\n"
                f"harness.main(main)\n")
    full_env = dict(os.environ)
    full_env.update(env or {})
    return h.run([sys.executable, script, build], timeout=timeout, env=full_env)


def counts(r):
    """(passed, failed, skipped) from the closing line, or None when it is missing or not last."""
    lines = r.out.strip().splitlines()
    match = re.fullmatch(r"\S+\.py: (\d+) passed, (\d+) failed, (\d+) skipped", lines[-1]) if lines else None
    return tuple(int(g) for g in match.groups()) if match else None


def pid_gone(pid):
    """True once no process has this id (the child script that started it has reaped it)."""
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def main(harness_):
    global h
    h = harness_
    tmp = h.tmpdir("children")

    r = child(tmp, "counting.py", """
        h.check("holds", True)
        h.check("does not hold", False, "because\\nof two lines")
        with h.case("raises"):
            {}["missing"]
        with h.case("expect fails"):
            h.expect(1 == 2, "one is not two")
        with h.case("after the failures"):
            pass
    """)
    h.check("PASS and FAIL lines, the reason on the FAIL line, more lines indented",
            "PASS holds\n" in r.out and "FAIL does not hold: because\n    of two lines\n" in r.out
            and "FAIL expect fails: one is not two\n" in r.out, r)
    h.check("an exception in a case is a FAIL naming it, and the next case still runs",
            re.search(r"^FAIL raises: KeyError: 'missing'", r.out, re.M) is not None
            and re.search(r"^PASS after the failures \(\d+\.\d s\)$", r.out, re.M) is not None, r)
    h.check("closing line counts them, last; exit 1", counts(r) == (2, 3, 0) and r.rc == 1, r)

    r = child(tmp, "nothing.py", "pass\n")
    h.check("a script that checks nothing fails", r.rc == 1 and counts(r) == (0, 1, 0), r)

    r = child(tmp, "crash.py", """
        h.check("before", True)
        raise RuntimeError("boom")
    """)
    h.check("an exception outside any case is a FAIL and the count line still comes",
            r.rc == 1 and counts(r) == (1, 1, 0) and "FAIL crash.py ran to the end: RuntimeError: boom" in r.out, r)

    r = child(tmp, "vectors.py", """
        with h.group("needs a vector"):
            h.vector("no/such/file")
            h.check("never reached", True)
        with h.case("a case needing a vector"):
            h.vector("no/such/file")
        h.check("vectors dir from DSTACK_VECTORS", h.vectors == os.environ["DSTACK_VECTORS"])
    """, env={"DSTACK_VECTORS": os.path.join(tmp, "no-vectors")})
    h.check("a missing vector is a loud SKIP, never a pass",
            r.rc == 0 and counts(r) == (1, 0, 2) and "never reached" not in r.out
            and "*** vectors missing at" in r.out
            and "SKIP needs a vector: vector no/such/file missing at" in r.out
            and "SKIP a case needing a vector: vector no/such/file missing" in r.out, r)

    r = child(tmp, "run.py", """
        r = h.run([h.dstack, "a b"])
        h.check("dstack is BUILD_DIR/dstack, output captured", r.rc == 0 and r.out == "fake dstack a b\\n", r)
        started = time.monotonic()
        r = h.run(["sleep", "30"], timeout=1)
        h.check("timeout", r.rc is None and r.timed_out and "killed after 1 s" in r.err
                and time.monotonic() - started < 10, r)
    """)
    h.check("run: output and exit status captured; a hung command is killed at its timeout",
            r.rc == 0 and counts(r) == (2, 0, 0), r)

    r = child(tmp, "servers.py", """
        with h.case("tcp"):
            with h.server(SERVER + ["ok", "tcp"], name="tcp server") as s:
                h.expect(s.address.kind == "tcp" and s.address.host == "127.0.0.1", str(s.address))
                response = harness.http_request(s.address, "GET", "/x?y")
                h.expect(response.status == 200 and response.body == b"hello /x?y", str(response))
                status, body = h.curl(s.url + "/via-curl")
                h.expect(status == 200 and body == "hello /via-curl", (status, body))
                status, body = h.curl(s.url + "/peer", interface="127.0.0.2")  # loopback, another source
                h.expect(status == 200 and body == "127.0.0.2", (status, body))
        with h.case("unix"):
            path = os.path.join(h.tmpdir("sock"), "s.sock")
            with h.server(SERVER + ["ok", "unix", path], name="unix server") as s:
                h.expect(s.address.kind == "unix" and s.address.path == path, str(s.address))
                response = harness.http_request(s.address, "GET", "/u")
                h.expect(response.status == 200 and response.text() == "hello /u", str(response))
                sock = harness.connect(s.address)
                sock.sendall(b"GET /raw HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
                raw = harness.read_until_close(sock)
                sock.close()
                h.expect(harness.http_status(raw) == 200 and harness.http_body(raw) == b"hello /raw", raw)
                status, body = h.curl("http://localhost/c", unix_socket=path)
                h.expect(status == 200 and body == "hello /c", (status, body))
    """)
    h.check("server on port 0 / a unix path: address read, HTTP over both, curl (and its --interface), "
            "stopped with exit 0",
            r.rc == 0 and counts(r) == (4, 0, 0) and "PASS tcp server stops on SIGTERM with exit 0" in r.out
            and "PASS unix server stops on SIGTERM with exit 0" in r.out, r)

    r = child(tmp, "bad_servers.py", """
        started = time.monotonic()
        with h.case("silent"):
            with h.server(SERVER + ["silent", "tcp"], timeout=1, name="silent") as s:
                pass
        print(f"silent took {time.monotonic() - started:.1f}")
        with h.case("dies"):
            with h.server(SERVER + ["dies", "tcp"], name="dies") as s:
                pass
        with h.group("stubborn"):
            with h.server(SERVER + ["stubborn", "tcp"], name="stubborn", stop_timeout=1) as s:
                print(f"stubborn pid {s.proc.pid}")
    """)
    silent = re.search(r"^silent took (\d+\.\d)", r.out, re.M)
    h.check("a server that never gets ready fails at its deadline",
            "FAIL silent: silent not ready within 1 s" in r.out and silent and float(silent.group(1)) < 5, r)
    h.check("a server that exits before it is ready fails, with its exit code",
            "FAIL dies: dies exited with 3 before it was ready" in r.out, r)
    stubborn = re.search(r"^stubborn pid (\d+)", r.out, re.M)
    h.check("a server that ignores SIGTERM fails its stop check and is killed",
            "FAIL stubborn stops on SIGTERM with exit 0: still running 1 s after SIGTERM: killed" in r.out
            and stubborn and pid_gone(int(stubborn.group(1))) and r.rc == 1 and counts(r) == (0, 3, 0), r)

    r = child(tmp, "killed.py", """
        with h.server(SERVER + ["stubborn", "tcp"], name="left running", stop_timeout=1) as s:
            print(f"server pid {s.proc.pid}", flush=True)
            os.kill(os.getpid(), 15)
            time.sleep(30)
    """)
    pid = re.search(r"^server pid (\d+)", r.out, re.M)
    h.check("a script stopped by SIGTERM reports it, fails, and leaves no server running",
            pid and pid_gone(int(pid.group(1))) and r.rc == 1 and counts(r) is not None and counts(r)[1] >= 1
            and "interrupted" in r.out, r)

    r = child(tmp, "argv.py", "h.check('build dir', h.build_dir.endswith('fake-build'))\n")
    h.check("BUILD_DIR is the argument", r.rc == 0 and counts(r) == (1, 0, 0), r)


if __name__ == "__main__":
    harness.main(main, needs=["curl"])
