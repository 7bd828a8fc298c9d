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
    CollateralSource source;
    std::optional<std::string> now_text;
    CLI::App cli{"dstack verify collateral", "collateral"};
    cli.add_option("QUOTE", input);
    cli.add_option("-o,--output", output);
    non_empty(cli.add_option("--pccs", source.pccs_url));
    non_empty(cli.add_option("--cache-dir", source.cache_dir));
    non_empty(cli.add_option("--now", now_text));
    if (auto done = parse_command_line(cli, usage, argc, argv)) return *done;
    if (input.empty() || output.empty()) {
        fmt::print(stderr, "dstack verify collateral: usage: dstack verify collateral QUOTE -o FILE [--pccs URL]\n");
        return exit_usage;
    }
    UnixSeconds now = system_now();
    if (now_text) {
        auto parsed = parse_time(*now_text);
        if (!parsed) return fmt::print(stderr, "dstack verify collateral: {}\n", parsed.error().message), exit_usage;
        now = *parsed;
    }
    auto bytes = read_input(input, tee::max_attestation_size);
    if (!bytes) return fmt::print(stderr, "dstack verify collateral: {}\n", bytes.error().message), exit_usage;
    auto evidence = tee::read_evidence(*bytes);
    if (!evidence) return fmt::print(stderr, "dstack verify collateral: {}: {}\n", input, evidence.error().message), exit_usage;
    auto quote = tee::parse_quote(evidence->quote);
    if (!quote) return fmt::print(stderr, "dstack verify collateral: {}: {}\n", input, quote.error().message), exit_usage;
    auto collateral = fetch_collateral_now(source, *quote, now);
    if (!collateral) return fmt::print(stderr, "dstack verify collateral: {}\n", collateral.error().message), exit_usage;
    auto json = tee::collateral_to_json(*collateral);
    if (auto written = write_file_atomic(output, as_bytes(json), 0644); !written)
        return fmt::print(stderr, "dstack verify collateral: {}\n", written.error().message), exit_usage;
    fmt::print("wrote {} ({} bytes) from {}\n", output, json.size(), source.effective_pccs_url());
    return exit_ok;
}

}  // namespace dstack::applets::verify
