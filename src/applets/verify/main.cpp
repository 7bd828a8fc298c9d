// applet: verify — its usage text below is also its --help.
#include "support/command-line.hpp"
#include "verify.hpp"

namespace dstack::applets {
namespace {

constexpr std::string_view usage = R"usage(usage: dstack verify [OPTIONS] INPUT
       dstack verify collateral QUOTE -o FILE [--pccs URL] [--now TIME]
       dstack verify serve --listen ADDR [--collateral FILE | --pccs URL] [SERVE OPTIONS]
       dstack verify sim init DIR
       dstack verify sim quote DIR -o FILE [--version 3|4|5] [--td15] [--report-data HEX]
       dstack verify sim collateral DIR -o FILE [--sgx] [--status STATUS]

Verifies an Intel TDX or SGX quote, or a dstack attestation, with Intel's DCAP
collateral; replays its event log into the quote's RTMRs; derives the app's
identity; prints one verdict: VALID or INVALID, the TCB status and every check
as passed, failed or not checked (with the reason).

INPUT (a file, or - for standard input) may be: a raw quote; the quote in hex
(optional 0x); dstack's V0 attestation (raw or hex); a GetQuote response
({"quote","event_log",...}); {"attestation": "<hex>"}; an RA-TLS certificate
(PEM; any certificates after it are its issuers). Inputs are limited to 10 MiB,
quotes to 64 KiB. An RA-TLS certificate must be valid at the verification time
and signed by itself or by the next certificate of the PEM.

Collateral:
  --collateral FILE     dcap-qvl's collateral JSON (offline; see 'collateral')
  --pccs URL            fetch from a PCCS or Intel PCS (default: $PCCS_URL, else
                        https://pccs.phala.network), cached on disk
  --cache-dir DIR       collateral cache (default ~/.cache/dstack/collateral)
  --now TIME            verify at TIME (Unix seconds or RFC 3339) instead of now
  --event-log FILE      the event log of a bare quote: the CCEL binary log or a
                        JSON array of events (as in GetQuote's event_log)
  --trust-root FILE     a root CA (PEM or DER) other than Intel's, e.g. the
                        simulator's; the verdict then says SIMULATED

Policy (strict by default: only UpToDate with no advisories passes):
  --allow-status S      also accept TCB status S (repeatable, or a comma list):
                        SWHardeningNeeded, ConfigurationNeeded,
                        ConfigurationAndSWHardeningNeeded, OutOfDate,
                        OutOfDateConfigurationNeeded (Revoked never passes)
  --allow-advisory ID   accept this Intel advisory (repeatable; * = any)
  --allow-debug         accept a debug TD or enclave (reported as "debug (allowed
                        by --allow-debug)")
Every relaxation is printed with the verdict.

Expectations (each one given becomes a check; an empty value is a usage error):
  --report-data HEX     the quote's report data (zero-padded to 64 bytes)
  --compose FILE        app-compose.json: its SHA-256 must equal compose-hash
  --app-id HEX          the app id from the runtime events
  --os-image-hash HEX   the os-image-hash runtime event (what the booted OS says
                        of itself: the OS image measurement is not computed yet,
                        and the verdict says so)
  --mrtd HEX  --rtmr0 HEX  --rtmr1 HEX  --rtmr2 HEX   the quote's measurements

Output:
  --json                one JSON object instead of the text verdict; each check
                        has a stable "id" (e.g. dcap.quote_signature) besides
                        its "name"
  -h, --help            show this text
  --version             show the version of the dstack binary

Exit status: 0 valid; 1 invalid (the reason is printed); 2 bad usage, an
unreadable input or collateral that could not be obtained.

Subcommands:
  collateral  fetch the collateral for QUOTE and write it to FILE, for
              offline verification later with --collateral
  serve       dstack-verifier's HTTP API: POST /verify (upstream's request
              and response JSON), GET /health. Takes --collateral, --pccs,
              --cache-dir, --now (offline tests only: a fixed clock),
              --trust-root and the policy options above, and:
    --listen ADDR       HOST:PORT, [::1]:PORT, tcp:HOST:PORT, unix:PATH[?mode=0660]
                        or systemd:N (port 0: any free port; the address is
                        printed once listening)
    --skip-os-image     accept evidence whose OS image is not measured: this
                        verifier does not compute OS image measurements, so
                        without it every response is is_valid false
    --threads N         requests verified at once (default 2)
    --accept-simulated  with --trust-root: let simulated evidence be valid.
                        With --trust-root every response says "simulated":
                        true, and without this flag none is valid
    --config FILE       upstream's dstack-verifier.toml: address and port (for
                        --listen), attestation.urls.pccs (--pccs) and
                        attestation.root_ca.tdx (--trust-root, with
                        attestation.insecure_allow_external_trust_anchors =
                        true); flags win; unknown keys are warned about
    --log-level L       debug, info (default), warn, error or off
    --log-format F      text (default) or json (one object a line, stderr)
              SIGINT/SIGTERM stops gracefully: idle connections are closed and
              requests in flight answered (10 s at most); a second one stops
              at once. Per client address at most 64 connections are served.
              Without --collateral, collateral is fetched per request from the
              PCCS, through the cache. Request bodies are limited to 2 MiB.
              Responses carry upstream's fields, then "simulated" and every
              check ("checks": [{"id","name","state","detail"}], as --json).
  sim         the simulated TEE: a test PKI like Intel's (init), quotes with
              any body values (quote) and signed collateral (collateral);
              verify them with --trust-root DIR/root.pem
)usage";

}  // namespace

int verify_main(int argc, char** argv) {
    static constexpr Subcommand subcommands[] = {
        {"collateral", verify::collateral_main},
        {"serve", verify::serve_main},
        {"sim", verify::sim_main},
    };
    return run_subcommand("verify", usage, subcommands, verify::check_main, argc, argv);
}

}  // namespace dstack::applets
