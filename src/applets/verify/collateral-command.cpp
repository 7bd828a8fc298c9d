// `dstack verify collateral QUOTE -o FILE`: capture a quote's collateral for offline use.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "support/command-line.hpp"
#include "dstack/base/file.hpp"
#include "dstack/tee/attestation.hpp"
#include "verify.hpp"

namespace dstack::applets::verify {

int collateral_main(std::string_view usage, int argc, char** argv) {
    std::string input, output;
    app::CollateralSource source;
    std::optional<std::string> now_text;
    Command command("dstack verify collateral", usage, std::string(help_command));
    auto& cli = command.cli();
    cli.add_option("QUOTE", input);
    cli.add_option("-o,--output", output);
    non_empty(cli.add_option("--pccs", source.pccs_url));
    non_empty(cli.add_option("--cache-dir", source.cache_dir));
    non_empty(cli.add_option("--now", now_text));
    if (auto done = command.parse(argc, argv)) return *done;
    if (input.empty() || output.empty()) return command.usage_error("usage: dstack verify collateral QUOTE -o FILE [--pccs URL]");
    UnixSeconds now = system_now();
    if (now_text) {
        auto parsed = parse_now(*now_text);
        if (!parsed) return command.usage_error(parsed.error().message);
        now = *parsed;
    }
    auto bytes = read_file_or_stdin(input, tee::max_attestation_size);
    if (!bytes) return command.fail(bytes.error().message, exit_usage);
    auto evidence = tee::read_evidence(*bytes);
    if (!evidence) return command.fail(fmt::format("{}: {}", input, evidence.error().message), exit_usage);
    auto quote = tee::parse_quote(evidence->quote);
    if (!quote) return command.fail(fmt::format("{}: {}", input, quote.error().message), exit_usage);
    auto collateral = app::fetch_collateral_blocking(source, *quote, now, std::nullopt);
    if (!collateral) return command.fail(collateral.error().message, exit_usage);
    auto json = tee::collateral_to_json(*collateral);
    if (auto written = write_file_atomic(output, as_bytes(json), 0644); !written) return command.fail(written.error().message, exit_usage);
    fmt::print("wrote {} ({} bytes) from {}\n", output, json.size(), source.effective_pccs_url());
    return exit_ok;
}

}  // namespace dstack::applets::verify
