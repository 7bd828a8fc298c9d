// The verify applet's commands and what they share: reading inputs, obtaining collateral,
// printing verdicts. Each command file holds one command.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dstack/app/verdict.hpp"
#include "dstack/app/verifier.hpp"
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

inline constexpr std::string_view help_command = "dstack verify --help";

int check_main(std::string_view usage, int argc, char** argv);
int collateral_main(std::string_view usage, int argc, char** argv);
int serve_main(std::string_view usage, int argc, char** argv);
int sim_main(std::string_view usage, int argc, char** argv);

// The options every verifying command takes: collateral source, time, trust anchor, TCB policy.
struct VerifierArgs {
    app::CollateralSource collateral;
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
// The verifier those options describe (--collateral and --pccs together are refused); errors
// name the flag.
Result<app::VerifierConfig> verifier_config(const VerifierArgs& args);
// --now, parsed (Unix seconds or RFC 3339).
Result<UnixSeconds> parse_now(const std::string& text);

// PEM or DER.
Result<crypto::Certificate> read_trust_root(const std::string& path);

// --allow-status (repeatable, comma lists; Revoked refused), --allow-advisory, --allow-debug.
Result<app::Policy> parse_policy(const std::vector<std::string>& allow_status, const std::vector<std::string>& allow_advisory,
                                 bool allow_debug);

// The text verdict.
std::string render_verdict(const app::Verdict& verdict);

}  // namespace dstack::applets::verify
