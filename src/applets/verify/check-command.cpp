// `dstack verify INPUT`: one input, one verdict.
#include <cstdio>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "support/command-line.hpp"
#include "dstack/app/identity.hpp"
#include "dstack/base/file.hpp"
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
    if (bytes->empty()) return make_error("{}: no bytes given (an empty expectation would match nothing or anything)", flag);
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
        auto compose = read_file_or_stdin(*args.compose, 1024 * 1024);
        if (!compose) return std::move(compose).take_error().context("--compose");
        expected.compose_hash = app::compose_hash(*compose);
    }
    return expected;
}

// The CCEL binary log (/sys/firmware/acpi/tables/data/CCEL) or a JSON array of events.
Result<std::vector<tee::TdxEvent>> read_event_log(const std::string& path) {
    auto bytes = read_file_or_stdin(path, tee::max_event_log_size);
    if (!bytes) return std::move(bytes).take_error().context("--event-log");
    auto text = as_chars(*bytes);
    auto first = text.find_first_not_of(" \t\r\n");
    auto events = first != std::string_view::npos && text[first] == '[' ? tee::parse_event_log_json(text) : tee::parse_ccel(*bytes);
    if (!events) return std::move(events).take_error().context(fmt::format("--event-log {}", path));
    return events;
}

}  // namespace

int check_main(std::string_view usage, int argc, char** argv) {
    CheckArgs args;
    Command command("dstack verify", usage, std::string(help_command));
    auto& cli = command.cli();
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
    if (auto done = command.parse(argc, argv)) return *done;
    if (args.input.empty()) return command.usage_error("no INPUT given");

    auto config = verifier_config(args.verifier);
    if (!config) return command.usage_error(config.error().message);
    auto expectations = expectations_from(args);
    if (!expectations) return command.usage_error(expectations.error().message);

    // Bad input is exit 2 too, but no usage mistake: no pointer to --help.
    auto input = read_file_or_stdin(args.input, tee::max_attestation_size);
    if (!input) return command.fail(input.error().message, exit_usage);
    auto evidence = tee::read_evidence(*input);
    if (!evidence) return command.fail(fmt::format("{}: {}", args.input, evidence.error().message), exit_usage);
    if (args.event_log) {
        if (!evidence->event_log.empty()) return command.usage_error("--event-log: the input already carries an event log");
        auto events = read_event_log(*args.event_log);
        if (!events) return command.fail(events.error().message, exit_usage);
        evidence->event_log = std::move(*events);
    }

    auto verifier = app::Verifier::create(std::move(*config));
    if (!verifier) return command.fail(verifier.error().message, exit_usage);
    // No verdict without collateral: it could not be read or fetched.
    auto verdict = (*verifier)->verify_blocking(*evidence, *expectations);
    if (!verdict) return command.fail(verdict.error().message, exit_usage);
    if (args.json) fmt::print("{}\n", app::verdict_json(*verdict));
    else fmt::print("{}", render_verdict(*verdict));
    return verdict->valid ? exit_ok : exit_failure;
}

}  // namespace dstack::applets::verify
