"""What every integration script in tests/integration shares (Python 3 standard library only).

A script is a function of one Harness, handed to harness.main (scripts sit next to this file, so
python3 finds it for `import harness`):

    import harness

    def main(h):
        with h.group("real TDX quote"):          # a group of checks; an exception inside is one FAIL
            quote = h.vector("dcap-qvl/tdx_quote")        # missing: SKIP for the group, never a pass
            r = h.run([h.dstack, "verify", quote])        # Completed(rc, out, err); rc None on timeout
            h.check("real TDX quote: VALID", r.rc == 0 and r.out.startswith("VALID"), r)
        with h.case("the server answers /health"):       # one check: PASS when the block ends
            with h.server([h.dstack, "verify", "serve", "--listen", "127.0.0.1:0"]) as server:
                response = harness.http_request(server.address, "GET", "/health")
                h.expect(response.status == 200, f"status {response.status}")   # FAIL <case>: <message>

    if __name__ == "__main__":
        harness.main(main, needs=["curl"])

Run it as `python3 tests/integration/test_x.py BUILD_DIR` (scripts/test passes the meson build
directory; the path of BUILD_DIR/dstack is accepted too). Output, one line per check:

    PASS name            FAIL name: why (more lines indented)            SKIP name: why

(a case's PASS line ends with its duration, "(1.2 s)"),

then `test_x.py: N passed, N failed, N skipped`, which scripts/test counts. The exit status is 1
when anything failed or nothing was checked, else 0.

Recording checks (methods of Harness):
  check(name, condition, detail="") -> bool    PASS or FAIL now; detail says why on failure
  case(name)                                   context: PASS at the end, FAIL on any exception,
                                               SKIP on Skip (h.vector, h.skip_case)
  group(name)                                  context: no count of its own; an exception inside
                                               is FAIL "<name> ran to the end", a Skip is SKIP <name>
  expect(condition, message)                   raises Failure(message) when condition is false
                                               (also a module function: harness.expect)
  skip(name, why)                              records a SKIP (the check could not be made)
  skip_case(why)                               raises Skip(why): the enclosing case/group is SKIP
Inputs and files:
  h.build_dir, h.dstack                        the build directory and BUILD_DIR/dstack
  h.binary(relative) -> path                   BUILD_DIR/relative; Failure when not built
  h.vectors, h.vector(name) -> path            $DSTACK_VECTORS (default ../shared/vectors next to
                                               the project); Skip when that file is missing
  h.has_vector(name) -> bool
  h.tmp, h.tmpdir(name) -> path                one private temp dir, removed at the end
Processes:
  h.run(cmd, stdin=None, timeout=60, text=True, env=None) -> Completed
        Completed.rc (None when it timed out and was killed), .out, .err (str, or bytes when
        text=False), .timed_out, .cmd; str(completed) is a readable failure detail.
  h.server(cmd, ready=r"listening on (\\S+)", count=1, timeout=15, name=None, check_exit=True,
           stop_timeout=10) -> Server
        context manager: starts cmd (stderr to a log file, stdin closed), waits until `count`
        stdout lines match `ready` (group 1 is the address) or fails after `timeout` seconds, and
        always stops it at the end: SIGTERM, SIGKILL after stop_timeout seconds. With check_exit
        the stop is a check of its own ("<name> stops on SIGTERM with exit 0"). The server also
        dies with this script (PR_SET_PDEATHSIG). On any failure while it ran, its log's tail is
        printed. Server.addresses (list of Address), .address (the first), .url (http://host:port
        of the first tcp address), .alive(), .returncode, .log_tail(), .stdout_lines.
  h.curl(url, data_file=None, method=None, headers=(), unix_socket=None, timeout=60, interface=None)
        -> (status, body): the real curl; status 0 when curl itself failed (body then holds its
        error). interface: the source address it connects from (curl --interface, e.g. 127.0.0.1).
HTTP and sockets (module functions):
  parse_address("tcp:127.0.0.1:8080" | "tcp:[::1]:80" | "unix:/path") -> Address
        Address.kind ("tcp", "tls", "unix"), .host, .port, .path, .url
  connect(address, timeout=5) -> socket         address: Address, "tcp:..."/"unix:..." or (host, port)
  http_request(address, method="GET", path="/", body=None, headers=None, timeout=10) -> Response
        HTTP/1.1 through http.client over TCP or a unix socket. Response.status, .reason,
        .headers (lower-case names), .body (bytes), .text(), .json()
  read_until_close(sock, limit=1 MiB) -> bytes; http_status(raw) -> int | None; http_body(raw) -> bytes
        for raw-socket tests that write their own bytes.

Network use is loopback only (127.0.0.1, ::1, unix sockets); every wait here has a deadline.
"""

import contextlib
import http.client
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
DEFAULT_VECTORS = os.path.normpath(os.path.join(ROOT, "..", "shared", "vectors"))
DETAIL_LIMIT = 3000  # characters of a failure's detail that are printed
STOP_TIMEOUT = 10  # seconds a server gets between SIGTERM and SIGKILL


class Failure(Exception):
    """A check that did not hold; the message says why."""


class Skip(Exception):
    """A check that could not be made (a missing vector); the message says why."""


def expect(condition, message):
    """Raises Failure(message) when condition is false: inside h.case, the case FAILs with it."""
    if not condition:
        raise Failure(message)


# ---- processes ----

class Completed:
    def __init__(self, cmd, rc, out, err, timed_out=False):
        self.cmd, self.rc, self.out, self.err, self.timed_out = cmd, rc, out, err, timed_out

    def __str__(self):
        def show(value):
            return value.decode(errors="replace") if isinstance(value, bytes) else value
        head = "timed out" if self.timed_out else f"exit {self.rc}"
        return f"{head}: {' '.join(map(str, self.cmd))}\nstdout: {show(self.out)}\nstderr: {show(self.err)}"


try:  # looked up here, not in the forked child, where taking the import lock could deadlock
    import ctypes
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (ImportError, OSError, AttributeError):
    _prctl = None


def _die_with_parent():
    """Runs in the child before exec: it gets SIGKILL when the thread that started it exits, so a
    test script killed by a timeout leaves no server behind (Linux PR_SET_PDEATHSIG; best effort)."""
    if _prctl is not None:
        _prctl(1, int(signal.SIGKILL))


class Address:
    def __init__(self, kind, host=None, port=None, path=None):
        self.kind, self.host, self.port, self.path = kind, host, port, path

    def __str__(self):
        if self.kind == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.kind}:{host}:{self.port}"

    __repr__ = __str__

    @property
    def url(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.kind == "tls" else "http"
        return f"{scheme}://{host}:{self.port}"


def parse_address(text):
    """'tcp:127.0.0.1:80', 'tls:[::1]:443' or 'unix:/path' (what our listeners print)."""
    kind, sep, rest = text.partition(":")
    if not sep:
        raise ValueError(f"not an address: {text!r}")
    if kind == "unix":
        return Address("unix", path=rest)
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"not a host:port address: {text!r}")
    return Address(kind, host=host.strip("[]"), port=int(port))


def _as_address(address):
    if isinstance(address, Address):
        return address
    if isinstance(address, tuple):
        return Address("tcp", host=address[0], port=int(address[1]))
    return parse_address(address)


class Server:
    """A process started on port 0 (or a unix path) whose ready lines name where it listens."""

    def __init__(self, harness, cmd, ready, count, timeout, name, check_exit, stop_timeout):
        self.harness, self.cmd = harness, list(map(str, cmd))
        self.ready, self.count, self.timeout = ready, count, timeout
        self.stop_timeout = stop_timeout
        self.name = name or self._default_name(self.cmd)
        self.check_exit = check_exit
        self.addresses = []
        self.stdout_lines = []
        self.proc = None
        self.log_path = None
        self._lines = queue.Queue()
        self._failed_before = 0

    @staticmethod
    def _default_name(cmd):
        """'dstack verify serve' for [.../dstack, verify, serve, --listen, ...]: the words before the
        first option."""
        words = [os.path.basename(cmd[0])]
        for arg in cmd[1:]:
            if arg.startswith("-"):
                break
            words.append(arg)
        return " ".join(words)

    # The reader thread keeps draining stdout after the ready lines, so a chatty server never blocks.
    def _read_stdout(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.stdout_lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def __enter__(self):
        self._failed_before = self.harness.failed
        self.log_path = os.path.join(self.harness.tmpdir("server-logs"), f"{len(self.harness._servers)}.log")
        log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                         preexec_fn=_die_with_parent)
        finally:
            log.close()
        self.harness._servers.append(self)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        deadline = time.monotonic() + self.timeout
        pattern = re.compile(self.ready)
        try:
            while len(self.addresses) < self.count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Failure(f"{self.name} not ready within {self.timeout} s (stdout so far: "
                                  f"{self.stdout_lines!r})\n{self.log_tail()}")
                try:
                    line = self._lines.get(timeout=remaining)
                except queue.Empty:
                    continue
                if line is None:
                    self.proc.wait(timeout=self.stop_timeout)
                    raise Failure(f"{self.name} exited with {self.proc.returncode} before it was ready "
                                  f"(stdout: {self.stdout_lines!r})\n{self.log_tail()}")
                match = pattern.search(line)
                if match:
                    self.addresses.append(parse_address(match.group(1)))
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exc):
        outcome = self._stop()
        if self.check_exit:
            self.harness.check(f"{self.name} stops on SIGTERM with exit 0", outcome == 0,
                               f"{outcome}\n{self.log_tail()}")
        if self.harness.failed > self._failed_before:
            tail = self.log_tail()
            if tail:
                print(f"--- {self.name}: its log (tail) ---\n{tail}\n--- end of log ---")
        return False

    def _stop(self):
        """Stops the process; returns 0, its exit code, or a sentence saying what went wrong."""
        if self.proc is None:
            return "never started"
        if self in self.harness._servers:
            self.harness._servers.remove(self)
        if self.proc.poll() is not None:
            return f"it had already exited with {self.proc.returncode}"
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return f"still running {self.stop_timeout} s after SIGTERM: killed"

    @property
    def address(self):
        return self.addresses[0]

    @property
    def url(self):
        for address in self.addresses:
            if address.kind == "tcp":
                return address.url
        raise Failure(f"{self.name} has no tcp address: {self.addresses}")

    @property
    def returncode(self):
        return self.proc.poll()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, limit=3000):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - limit))
                return f.read().decode(errors="replace")
        except (OSError, TypeError):
            return ""


# ---- HTTP and sockets ----

def connect(address, timeout=5):
    address = _as_address(address)
    if address.kind == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(address.path)
        except OSError:
            s.close()
            raise
        return s
    return socket.create_connection((address.host, address.port), timeout=timeout)


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = connect(Address("unix", path=self._path), self.timeout)


class Response:
    def __init__(self, status, reason, headers, body):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body

    def text(self):
        return self.body.decode(errors="replace")

    def json(self):
        return json.loads(self.body)

    def __str__(self):
        return f"HTTP {self.status} {self.reason} {self.headers} {self.body[:500]!r}"


def http_request(address, method="GET", path="/", body=None, headers=None, timeout=10):
    """One request on a fresh connection, through the standard library's HTTP/1.1 client."""
    address = _as_address(address)
    if address.kind == "unix":
        conn = _UnixHTTPConnection(address.path, timeout)
    elif address.kind == "tcp":
        conn = http.client.HTTPConnection(address.host, address.port, timeout=timeout)
    else:
        raise ValueError(f"http_request speaks plain HTTP only, not {address}")
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        data = response.read()
        return Response(response.status, response.reason,
                        {name.lower(): value for name, value in response.getheaders()}, data)
    finally:
        conn.close()


def read_until_close(sock, limit=1 << 20):
    data = b""
    while len(data) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def http_status(raw):
    """The status code of a raw HTTP response, or None when it does not start like one."""
    parts = raw.split(b"\r\n", 1)[0].split(b" ")
    return int(parts[1]) if len(parts) > 1 and parts[0].startswith(b"HTTP/") and parts[1].isdigit() else None


def http_body(raw):
    return raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in raw else b""


# ---- the harness ----

def _detail(detail):
    text = str(detail).rstrip()
    if len(text) > DETAIL_LIMIT:
        text = text[:DETAIL_LIMIT] + f"... ({len(text) - DETAIL_LIMIT} more characters)"
    return text.replace("\n", "\n    ")


class Harness:
    def __init__(self, script, build_dir):
        self.script = script
        self.build_dir = os.path.abspath(build_dir)
        self.dstack = os.path.join(self.build_dir, "dstack")
        self.vectors = os.environ.get("DSTACK_VECTORS") or DEFAULT_VECTORS
        self.passed = self.failed = self.skipped = 0
        self.tmp = tempfile.mkdtemp(prefix=f"dstack-{os.path.splitext(script)[0]}-")
        self._servers = []
        self._vectors_warned = False

    # -- recording --
    def check(self, name, condition, detail=""):
        if condition:
            self.passed += 1
            print(f"PASS {name}", flush=True)
            return True
        self.failed += 1
        print(f"FAIL {name}: {_detail(detail) or 'the condition did not hold'}", flush=True)
        return False

    def skip(self, name, why):
        self.skipped += 1
        print(f"SKIP {name}: {why}", flush=True)

    expect = staticmethod(expect)

    @staticmethod
    def skip_case(why):
        raise Skip(why)

    @contextlib.contextmanager
    def case(self, name):
        started = time.monotonic()
        try:
            yield
        except Skip as e:
            self.skip(name, str(e))
        except Failure as e:
            self.check(name, False, str(e))
        except (KeyboardInterrupt, SystemExit) as e:  # stopped by a timeout: this case did not pass
            self.check(name, False, f"interrupted: {e!r}")
            raise
        except Exception as e:  # a broken case is a failed case, and the others still run
            self.check(name, False, f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
        else:
            self.passed += 1
            print(f"PASS {name} ({time.monotonic() - started:.1f} s)", flush=True)

    @contextlib.contextmanager
    def group(self, name):
        try:
            yield
        except Skip as e:
            self.skip(name, str(e))
        except Exception as e:
            self.check(f"{name} ran to the end", False, f"{type(e).__name__}: {e}\n{traceback.format_exc()}")

    # -- inputs --
    def binary(self, relative):
        path = os.path.join(self.build_dir, relative)
        if not os.access(path, os.X_OK):
            raise Failure(f"{path} is not built (ninja -C {self.build_dir} {relative})")
        return path

    def has_vector(self, name):
        return os.path.isfile(os.path.join(self.vectors, name))

    def vector(self, name):
        path = os.path.join(self.vectors, name)
        if not os.path.isfile(path):
            if not self._vectors_warned:
                self._vectors_warned = True
                print(f"*** vectors missing at {self.vectors}: set DSTACK_VECTORS; the checks that need "
                      f"them are SKIPPED, not passed ***", flush=True)
            raise Skip(f"vector {name} missing at {self.vectors} (set DSTACK_VECTORS)")
        return path

    def tmpdir(self, name):
        path = os.path.join(self.tmp, name)
        os.makedirs(path, exist_ok=True)
        return path

    # -- processes --
    def run(self, cmd, stdin=None, timeout=60, text=True, env=None):
        if isinstance(stdin, str):
            stdin = stdin.encode()
        try:
            proc = subprocess.run(list(map(str, cmd)), input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=None if stdin is not None else subprocess.DEVNULL, timeout=timeout, env=env)
            out, err, rc, timed_out = proc.stdout, proc.stderr, proc.returncode, False
        except subprocess.TimeoutExpired as e:  # subprocess.run has killed it
            out, rc, timed_out = e.stdout or b"", None, True
            err = (e.stderr or b"") + f"\n*** killed after {timeout} s ***".encode()
        if text:
            out, err = out.decode(errors="replace"), err.decode(errors="replace")
        return Completed(cmd, rc, out, err, timed_out)

    def server(self, cmd, ready=r"listening on (\S+)", count=1, timeout=15, name=None, check_exit=True,
               stop_timeout=STOP_TIMEOUT):
        return Server(self, cmd, ready, count, timeout, name, check_exit, stop_timeout)

    def curl(self, url, data_file=None, method=None, headers=(), unix_socket=None, timeout=60, interface=None):
        args = ["curl", "-sS", "--max-time", str(timeout), "-o", "-", "-w", "\n%{http_code}"]
        if interface:
            args += ["--interface", interface]
        if unix_socket:
            args += ["--unix-socket", unix_socket]
        if method:
            args += ["-X", method]
        for header in headers:
            args += ["-H", header]
        if data_file is not None:
            args += ["--data-binary", "@" + data_file]
        r = self.run(args + [url], timeout=timeout + 30)
        body, _, status = r.out.rpartition("\n")
        if r.rc == 0 and status.isdigit():
            return int(status), body
        return 0, f"{r.out}{r.err}"

    # -- the end --
    def close(self):
        for server in list(self._servers):  # left running by a script that did not use `with`
            server._stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _terminated(signum, frame):
    raise SystemExit(f"stopped by signal {signum}")


def main(body, needs=()):
    """Runs body(harness) for the script that called it and exits with its outcome."""
    script = os.path.basename(sys.modules["__main__"].__file__)
    if len(sys.argv) != 2:
        print(f"usage: python3 {os.path.relpath(sys.modules['__main__'].__file__)} BUILD_DIR", file=sys.stderr)
        sys.exit(2)
    build_dir = sys.argv[1]
    if os.path.isfile(build_dir):  # the dstack binary itself
        build_dir = os.path.dirname(build_dir) or "."
    signal.signal(signal.SIGTERM, _terminated)  # so that the finally below stops the servers
    h = Harness(script, build_dir)
    started = time.monotonic()
    try:
        if not os.access(h.dstack, os.X_OK):
            h.check("setup: dstack is built", False, f"{h.dstack} is missing (ninja -C {h.build_dir} dstack)")
        missing = [tool for tool in needs if shutil.which(tool) is None]
        for tool in missing:
            h.check(f"setup: {tool} is installed", False, f"{tool} not found on PATH (scripts/setup installs it)")
        if h.failed == 0:
            try:
                body(h)
            except (KeyboardInterrupt, SystemExit) as e:  # a timeout's SIGTERM, or ^C
                h.check(f"{script} ran to the end", False, f"interrupted: {e!r}")
            except Exception as e:
                h.check(f"{script} ran to the end", False, f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
        if h.passed + h.failed + h.skipped == 0:
            h.check(f"{script} made a check", False, "no check ran: a test that checks nothing cannot fail")
    finally:
        h.close()
        print(f"time: {time.monotonic() - started:.1f} s")
        print(f"{script}: {h.passed} passed, {h.failed} failed, {h.skipped} skipped", flush=True)
    sys.exit(1 if h.failed else 0)
