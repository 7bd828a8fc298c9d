// `dstack verify INPUT`: one input, one verdict.
#include <cstdio>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "support/command-line.hpp"
#include "dstack/app/identity.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/tee/attestation.hpp"
#include "verify.hpp"

namespace dstack::applets::verify {
namespace {

struct CheckArgs {
    VerifierArgs verifier;
    std::string input;
    std::optional<std::string> event_log;
    std::optional<std::string> report_data, compose, app_id, os_image_hash, mrtd, rtmr[3];
    bool json = false;
};

Result<std::optional<Bytes>> optional_hex(const std::optional<std::string>& text, std::string_view flag, std::size_t max_size) {
    if (!text) return std::optional<Bytes>{};
    auto bytes = hex_decode(*text);
    if (!bytes) return std::move(bytes).take_error().context(fmt::format("{}", flag));
    if (bytes->size() > max_size) return make_error("{}: {} bytes, at most {} expected", flag, bytes->size(), max_size);
    return std::optional<Bytes>(std::move(*bytes));
}

Result<app::Expectations> expectations_from(const CheckArgs& args) {
    app::Expectations expected;
    DSTACK_TRY(expected.report_data, optional_hex(args.report_data, "--report-data", 64));
    DSTACK_TRY(expected.app_id, optional_hex(args.app_id, "--app-id", 64));
    DSTACK_TRY(expected.os_image_hash, optional_hex(args.os_image_hash, "--os-image-hash", 64));
    DSTACK_TRY(expected.mrtd, optional_hex(args.mrtd, "--mrtd", 48));
    for (int i = 0; i < 3; ++i) {
        DSTACK_TRY(expected.rtmr[i], optional_hex(args.rtmr[i], fmt::format("--rtmr{}", i), 48));
    }
    if (args.compose) {
        auto compose = read_input(*args.compose, 1024 * 1024);
        if (!compose) return std::move(compose).take_error().context("--compose");
        expected.compose_hash = app::compose_hash(*compose);
    }
    return expected;
}

// The CCEL binary log (/sys/firmware/acpi/tables/data/CCEL) or a JSON array of events.
Result<std::vector<tee::TdxEvent>> read_event_log(const std::string& path) {
    auto bytes = read_input(path, tee::max_event_log_size);
    if (!bytes) return std::move(bytes).take_error().context("--event-log");
    auto text = as_chars(*bytes);
    auto first = text.find_first_not_of(" \t\r\n");
    auto events = first != std::string_view::npos && text[first] == '[' ? tee::parse_event_log_json(text) : tee::parse_ccel(*bytes);
    if (!events) return std::move(events).take_error().context(fmt::format("--event-log {}", path));
    return events;
}

int usage_error(const std::string& message) {
    fmt::print(stderr, "dstack verify: {}\n", message);
    return exit_usage;
}

}  // namespace

int check_main(std::string_view usage, int argc, char** argv) {
    CheckArgs args;
    CLI::App cli{"dstack verify", "verify"};
    add_verifier_options(cli, args.verifier);
    cli.add_option("INPUT", args.input);
    non_empty(cli.add_option("--event-log", args.event_log));
    non_empty(cli.add_option("--report-data", args.report_data));
    non_empty(cli.add_option("--compose", args.compose));
    non_empty(cli.add_option("--app-id", args.app_id));
    non_empty(cli.add_option("--os-image-hash", args.os_image_hash));
    non_empty(cli.add_option("--mrtd", args.mrtd));
    for (int i = 0; i < 3; ++i) non_empty(cli.add_option(fmt::format("--rtmr{}", i), args.rtmr[i]));
    cli.add_flag("--json", args.json);
    if (auto done = parse_command_line(cli, usage, argc, argv)) return *done;
    if (args.input.empty()) return usage_error("no INPUT given (see dstack verify --help)");
    if (args.verifier.collateral.file && args.verifier.collateral.pccs_url) return usage_error("give --collateral or --pccs, not both");

    auto policy = parse_policy(args.verifier.allow_status, args.verifier.allow_advisory, args.verifier.allow_debug);
    if (!policy) return usage_error(policy.error().message);
    auto expectations = expectations_from(args);
    if (!expectations) return usage_error(expectations.error().message);

    tee::DcapOptions options;
    if (args.verifier.now) {
        auto now = parse_time(*args.verifier.now);
        if (!now) return usage_error(now.error().message);
        options.now = *now;
    } else {
        options.now = system_now();
    }
    if (args.verifier.trust_root) {
        auto root = read_trust_root(*args.verifier.trust_root);
        if (!root) return usage_error(root.error().message);
        options.trust_anchor = std::move(*root);
    }

    auto input = read_input(args.input, tee::max_attestation_size);
    if (!input) return usage_error(input.error().message);
    auto evidence = tee::read_evidence(*input);
    if (!evidence) return usage_error(fmt::format("{}: {}", args.input, evidence.error().message));

    if (args.event_log) {
        if (!evidence->event_log.empty()) return usage_error("--event-log: the input already carries an event log");
        auto events = read_event_log(*args.event_log);
        if (!events) return usage_error(events.error().message);
        evidence->event_log = std::move(*events);
    }

    // Parsed once, here: collateral is chosen by the quote's platform, and the verification reads
    // the same parse. A quote too broken to say which platform it is from still gets a verdict
    // (INVALID) when the collateral is given as a file.
    const tee::ParsedQuote quote(evidence->quote);
    Result<tee::Collateral> collateral = Error{"no collateral"};
    if (args.verifier.collateral.file || quote.quote) {
        collateral = quote.quote ? obtain_collateral(args.verifier.collateral, *quote.quote, options.now, options.trust_anchor)
                                 : obtain_collateral(args.verifier.collateral, tee::Quote{}, options.now, options.trust_anchor);
    } else {
        collateral = quote.quote.error().context("cannot fetch collateral for this quote");
    }
    if (!collateral) return usage_error(collateral.error().message);

    tee::CollateralCache cache;
    options.cache = &cache;
    auto verdict = app::verify_evidence(*evidence, quote, *collateral, options, *policy, *expectations);
    if (args.json) fmt::print("{}\n", app::verdict_json(verdict));
    else fmt::print("{}", render_verdict(verdict));
    return verdict.valid ? exit_ok : exit_failure;
}

}  // namespace dstack::applets::verify
