#include "support/daemon-options.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "dstack/base/log.hpp"

namespace dstack::applets {

void add_logging_options(CLI::App& cli, LoggingOptions& options) {
    cli.add_option("--log-level", options.level);
    cli.add_option("--log-format", options.format);
}

Result<void> apply_logging(const LoggingOptions& options, std::string_view component) {
    log::Settings settings;
    auto level = log::parse_level(options.level);
    if (!level) return std::move(level).take_error().context("--log-level");
    settings.level = *level;
    if (options.format == "text") settings.format = log::Format::text;
    else if (options.format == "json") settings.format = log::Format::json;
    else return make_error("--log-format: '{}' is neither text nor json", options.format);
    settings.component = component;
    log::configure(settings);
    return {};
}

ConfigOptions::ConfigOptions(CLI::App& cli) { cli.add_option("--config", path_); }

void ConfigOptions::bind(std::string key, CLI::Option* option) { bindings_.push_back({std::move(key), option}); }

void ConfigOptions::accept_unused(std::string key, std::string why) { unused_.emplace_back(std::move(key), std::move(why)); }

void ConfigOptions::accept(std::string key) { accepted_.push_back(std::move(key)); }

Result<void> ConfigOptions::apply() {
    if (!path_) return {};
    if (path_->empty()) return make_error("--config: no file given");
    auto loaded = Config::load(*path_);
    if (!loaded) return std::move(loaded).take_error().context("--config");
    config_ = std::move(*loaded);

    std::vector<std::string> known = accepted_;
    for (const auto& binding : bindings_) known.push_back(binding.key);
    for (const auto& [key, why] : unused_) {
        known.push_back(key);
        auto present = config_->get_words(key);
        if (!present || *present) log::warn("{}: key '{}' is accepted and not used: {}", config_->origin(), key, why);
    }
    config_->warn_unknown_keys(known);

    for (const auto& binding : bindings_) {
        if (binding.option->count() > 0) continue;  // the command line wins
        auto words = config_->get_words(binding.key);
        if (!words) return words.error();
        if (!*words) continue;
        try {
            binding.option->add_result(**words);
            binding.option->run_callback();
        } catch (const CLI::Error& error) {
            return make_error("{}: key '{}': {}", config_->origin(), binding.key, error.what());
        }
    }
    return {};
}

// Upstream writes a host and a port in separate keys.
Result<std::optional<std::string>> config_address(const Config& file, const std::string& table) {
    DSTACK_TRY(auto address, file.get_string(table + ".address"));
    DSTACK_TRY(auto port, file.get_int(table + ".port"));
    if (!address && !port) return std::optional<std::string>();
    std::string host = address.value_or("0.0.0.0");
    if (!port) return std::optional<std::string>(host);
    if (*port < 0 || *port > 65535) return make_error("{}: [{}] port {} is not 0 to 65535", file.origin(), table, *port);
    bool ipv6 = host.find(':') != std::string::npos && host.front() != '[';
    return std::optional<std::string>(ipv6 ? fmt::format("[{}]:{}", host, *port) : fmt::format("{}:{}", host, *port));
}

}  // namespace dstack::applets
