// The options every daemon takes besides its own: logging (--log-level, --log-format) and an
// upstream-style TOML config (--config FILE) whose keys fill the options the command line did not
// give. Flags win over the file; unknown keys in the file are warned about, never fatal.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dstack/base/config.hpp"
#include "dstack/base/result.hpp"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace dstack::applets {

struct LoggingOptions {
    std::string level = "info";
    std::string format = "text";
};
void add_logging_options(CLI::App& cli, LoggingOptions& options);
// Configures the process's log (component: the service's name in every line).
Result<void> apply_logging(const LoggingOptions& options, std::string_view component);

class ConfigOptions {
public:
    explicit ConfigOptions(CLI::App& cli);  // adds --config FILE

    // The TOML key (dotted: "attestation.urls.pccs") that fills `option` when the command line
    // did not give it. Values are taken as command-line words (see Config::get_words).
    void bind(std::string key, CLI::Option* option);
    // Keys upstream's file may carry that this build accepts and does not use: warned as ignored.
    void accept_unused(std::string key, std::string why);
    // Keys the caller reads itself through config() after apply().
    void accept(std::string key);

    // After parsing: loads the file (when given), warns about unknown and unused keys, fills the
    // options the command line left unset. Errors name the file and the key.
    Result<void> apply();
    // The loaded file, after apply(); null when no --config was given.
    const Config* config() const { return config_ ? &*config_ : nullptr; }

private:
    struct Binding {
        std::string key;
        CLI::Option* option;
    };
    std::optional<std::string> path_;
    std::vector<Binding> bindings_;
    std::vector<std::pair<std::string, std::string>> unused_;
    std::vector<std::string> accepted_;
    std::optional<Config> config_;
};

// An address from upstream's separate keys TABLE.address and TABLE.port ("0.0.0.0" when only the
// port is given; IPv6 hosts bracketed); nullopt when neither is there.
Result<std::optional<std::string>> config_address(const Config& file, const std::string& table);

}  // namespace dstack::applets
