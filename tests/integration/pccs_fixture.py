"""A PCCS-shaped HTTP server on 127.0.0.1 for the integration scripts (Python 3 standard library).

It serves one collateral JSON (the form the vectors hold and `dstack verify collateral` writes)
at the PCS v4 paths, with the bodies and issuer-chain headers a real PCCS sends, and records what
it is asked, so a test can check how many fetches the verifier made. A test can also make it slow,
make one path answer 404, or break the TCB info's signature, to see what the verifier does when
the fetch fails or the collateral does not verify. Not a test script itself (no test_ prefix):
test_verify.py and test_collateral_fetch.py import it.

    with Pccs(json.load(open(collateral_path))) as pccs:
        ... dstack verify --pccs pccs.url ...
        pccs.count, pccs.requests           # what was asked (path?query), in order
        pccs.reset(fail_path="/tdx/certification/v4/tcb", delay=0.2)
"""

import http.server
import threading
import time
import urllib.parse

TCB_PATH = "/tdx/certification/v4/tcb"
PCK_CRL_PATH = "/sgx/certification/v4/pckcrl"
QE_IDENTITY_PATH = "/tdx/certification/v4/qe/identity"
ROOT_CA_CRL_PATH = "/sgx/certification/v4/rootcacrl"
DOCUMENTS = (PCK_CRL_PATH, TCB_PATH, QE_IDENTITY_PATH, ROOT_CA_CRL_PATH)  # what a TDX verification fetches


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        pccs = self.server.pccs
        url = urllib.parse.urlparse(self.path)
        pccs._record(url.path + ("?" + url.query if url.query else ""))
        if pccs.delay:  # long enough that concurrent verifications overlap on the same fetch
            time.sleep(pccs.delay)
        if pccs.fail_path and self.path.startswith(pccs.fail_path):
            self._answer(404, b"", {})
            return
        c = pccs.collateral
        if pccs.tamper_tcb_signature and url.path == TCB_PATH:
            signature = bytearray.fromhex(c["tcb_info_signature"])
            signature[5] ^= 1
            c = dict(c, tcb_info_signature=signature.hex())  # this answer only
        routes = {
            PCK_CRL_PATH: (bytes.fromhex(c["pck_crl"]),
                           {"SGX-PCK-CRL-Issuer-Chain": _quoted(c["pck_crl_issuer_chain"])}),
            TCB_PATH: (('{"tcbInfo":' + c["tcb_info"] + ',"signature":"' + c["tcb_info_signature"] + '"}').encode(),
                       {"TCB-Info-Issuer-Chain": _quoted(c["tcb_info_issuer_chain"])}),
            QE_IDENTITY_PATH: (('{"enclaveIdentity":' + c["qe_identity"] + ',"signature":"'
                                + c["qe_identity_signature"] + '"}').encode(),
                               {"SGX-Enclave-Identity-Issuer-Chain": _quoted(c["qe_identity_issuer_chain"])}),
            ROOT_CA_CRL_PATH: (c["root_ca_crl"].encode(), {}),
        }
        if url.path not in routes:
            self._answer(404, b"", {})
            return
        body, headers = routes[url.path]
        self._answer(200, body, headers)

    def _answer(self, status, body, headers):
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _quoted(chain):
    return urllib.parse.quote(chain, safe="")


class Pccs:
    """A context manager: listens on a free port of 127.0.0.1 while the block runs."""

    def __init__(self, collateral):
        self.collateral = collateral
        self.fail_path = None
        self.tamper_tcb_signature = False
        self.delay = 0.0
        self.url = None
        self._lock = threading.Lock()
        self._requests = []
        self._server = None

    def __enter__(self):
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.pccs = self
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def __exit__(self, *exc):
        # url stays set: a test may point the verifier at it again to see a PCCS that is gone.
        self._server.shutdown()
        self._server.server_close()
        return False

    def _record(self, request):
        with self._lock:
            self._requests.append(request)

    @property
    def requests(self):
        """Every request so far (path?query), in the order they came, failed ones included."""
        with self._lock:
            return list(self._requests)

    @property
    def count(self):
        with self._lock:
            return len(self._requests)

    def reset(self, fail_path=None, tamper_tcb_signature=False, delay=0.0):
        """Forgets the requests so far and sets how the next ones are answered: requests whose
        path starts with fail_path get 404, tamper_tcb_signature flips a bit of the TCB info's
        signature, delay seconds before each answer."""
        with self._lock:
            self._requests.clear()
        self.fail_path = fail_path
        self.tamper_tcb_signature = tamper_tcb_signature
        self.delay = delay
