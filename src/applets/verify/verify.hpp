// The verify applet's commands and what they share: reading inputs, obtaining collateral,
// printing verdicts. Each command file holds one command.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dstack/app/verdict.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/tee/collateral.hpp"
#include "dstack/tee/quote.hpp"

namespace CLI {
class App;
class Option;
}

namespace dstack::applets::verify {

int check_main(std::string_view usage, int argc, char** argv);
int collateral_main(std::string_view usage, int argc, char** argv);
int serve_main(std::string_view usage, int argc, char** argv);
int sim_main(std::string_view usage, int argc, char** argv);

// Where collateral comes from: a file, or a PCCS (with a cache).
struct CollateralSource {
    std::optional<std::string> file;
    std::optional<std::string> pccs_url;
    std::optional<std::string> cache_dir;

    std::string effective_pccs_url() const;  // --pccs, else $PCCS_URL, else Phala's PCCS
};
// The options every verifying command takes: collateral source, time, trust anchor, TCB policy.
struct VerifierArgs {
    CollateralSource collateral;
    std::optional<std::string> now;
    std::optional<std::string> trust_root;
    std::vector<std::string> allow_status;
    std::vector<std::string> allow_advisory;
    bool allow_debug = false;
};
void add_verifier_options(CLI::App& cli, VerifierArgs& args);
// Makes an empty value of `option` a usage error (exit 2): an empty expectation, path or URL
// checks nothing, and an empty hex expectation could even match. Returns `option`.
CLI::Option* non_empty(CLI::Option* option);
// Adds -h/--help and --version, parses, and answers those two (or a parse error, exit 2). Returns
// the exit status when the command is already done, nullopt when it should go on.
std::optional<int> parse_command_line(CLI::App& cli, std::string_view usage, int argc, char** argv);

// From the PCCS (through the on-disk cache, which keeps only collateral that verifies against
// `trust_anchor`; nullopt: Intel's root).
Result<tee::Collateral> fetch_collateral_now(const CollateralSource& source, const tee::Quote& quote, UnixSeconds now,
                                             const std::optional<crypto::Certificate>& trust_anchor = std::nullopt);
Result<tee::Collateral> obtain_collateral(const CollateralSource& source, const tee::Quote& quote, UnixSeconds now,
                                          const std::optional<crypto::Certificate>& trust_anchor = std::nullopt);

// A file, or "-" for standard input, at most `max_size` bytes.
Result<Bytes> read_input(const std::string& path, std::size_t max_size);
// Unix seconds or RFC 3339.
Result<UnixSeconds> parse_time(std::string_view text);
// PEM or DER.
Result<crypto::Certificate> read_trust_root(const std::string& path);

// --allow-status (repeatable, comma lists; Revoked refused), --allow-advisory, --allow-debug.
Result<app::Policy> parse_policy(const std::vector<std::string>& allow_status, const std::vector<std::string>& allow_advisory,
                                 bool allow_debug);

// The text verdict.
std::string render_verdict(const app::Verdict& verdict);

}  // namespace dstack::applets::verify
