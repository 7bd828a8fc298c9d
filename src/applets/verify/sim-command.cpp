// `dstack verify sim ...`: the simulated TEE from the command line (a test PKI, quotes, collateral).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "support/command-line.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/tee/sim.hpp"
#include "verify.hpp"

namespace dstack::applets::verify {
namespace {

template <std::size_t N>
Result<void> set_hex(const std::optional<std::string>& text, std::string_view flag, tee::Fixed<N>& field) {
    if (!text) return {};
    auto bytes = hex_decode(*text);
    if (!bytes) return std::move(bytes).take_error().context(fmt::format("{}", flag));
    if (bytes->size() > N) return make_error("{}: {} bytes, at most {}", flag, bytes->size(), N);
    field.fill(0);
    std::copy(bytes->begin(), bytes->end(), field.begin());
    return {};
}

}  // namespace

int sim_main(std::string_view usage, int argc, char** argv) {
    Command command("dstack verify sim", usage, std::string(help_command));
    auto& cli = command.cli();
    cli.require_subcommand(0, 1);

    std::string dir, output;
    auto* init = cli.add_subcommand("init", "create a test PKI in DIR");
    init->add_option("DIR", dir)->required();

    auto* quote = cli.add_subcommand("quote", "write a quote signed by DIR's PKI");
    int version = 4;
    bool td15 = false, debug = false;
    std::optional<std::string> report_data, mrtd, rtmr[4], mr_config_id;
    quote->add_option("DIR", dir)->required();
    quote->add_option("-o,--output", output)->required();
    quote->add_option("--version", version);
    quote->add_flag("--td15", td15);
    quote->add_flag("--debug", debug);
    quote->add_option("--report-data", report_data);
    quote->add_option("--mrtd", mrtd);
    quote->add_option("--mr-config-id", mr_config_id);
    for (int i = 0; i < 4; ++i) quote->add_option(fmt::format("--rtmr{}", i), rtmr[i]);

    auto* collateral = cli.add_subcommand("collateral", "write collateral signed by DIR's PKI");
    bool sgx = false;
    std::string status = "UpToDate";
    std::vector<std::string> advisories;
    collateral->add_option("DIR", dir)->required();
    collateral->add_option("-o,--output", output)->required();
    collateral->add_flag("--sgx", sgx);
    collateral->add_option("--status", status);
    collateral->add_option("--advisory", advisories)->allow_extra_args(false);
    if (auto done = command.parse(argc, argv)) return *done;
    if (cli.get_subcommands().empty()) return command.usage_error("give a subcommand: init, quote or collateral");

    if (init->parsed()) {
        auto pki = tee::sim::generate_pki();
        if (!pki) return command.fail(pki.error().message);
        if (auto saved = pki->save(dir); !saved) return command.fail(saved.error().message);
        fmt::print("simulated PKI written to {}; verify its quotes with --trust-root {}/root.pem\n", dir, dir);
        return exit_ok;
    }
    auto pki = tee::sim::SimPki::load(dir);
    if (!pki) return command.fail(pki.error().message, exit_usage);

    if (quote->parsed()) {
        tee::sim::SimQuoteOptions options;
        options.version = static_cast<std::uint16_t>(version);
        options.td15 = td15;
        if (version == 3) {
            auto enclave = tee::sim::default_enclave_report();
            if (auto ok = set_hex(report_data, "--report-data", enclave.report_data); !ok) return command.fail(ok.error().message, exit_usage);
            if (debug) enclave.attributes[0] |= 0x02;
            options.enclave = enclave;
        } else {
            auto td = tee::sim::default_td_report();
            if (auto ok = set_hex(report_data, "--report-data", td.report_data); !ok) return command.fail(ok.error().message, exit_usage);
            if (auto ok = set_hex(mrtd, "--mrtd", td.mr_td); !ok) return command.fail(ok.error().message, exit_usage);
            if (auto ok = set_hex(mr_config_id, "--mr-config-id", td.mr_config_id); !ok) return command.fail(ok.error().message, exit_usage);
            tee::Fixed<48>* rtmrs[4] = {&td.rt_mr0, &td.rt_mr1, &td.rt_mr2, &td.rt_mr3};
            for (int i = 0; i < 4; ++i)
                if (auto ok = set_hex(rtmr[i], fmt::format("--rtmr{}", i), *rtmrs[i]); !ok) return command.fail(ok.error().message, exit_usage);
            if (debug) td.td_attributes[0] |= 0x01;
            options.td = td;
        }
        auto bytes = tee::sim::make_quote(*pki, options);
        if (!bytes) return command.fail(bytes.error().message);
        if (auto written = write_file_atomic(output, *bytes, 0644); !written) return command.fail(written.error().message);
        fmt::print("wrote {} ({} bytes)\n", output, bytes->size());
        return exit_ok;
    }

    tee::sim::SimCollateralOptions options;
    options.tdx = !sgx;
    options.issue_date = system_now() - 60;  // valid from now for the default 30 days
    options.tcb_status = status;
    options.advisory_ids = advisories;
    auto made = tee::sim::make_collateral(*pki, options);
    if (!made) return command.fail(made.error().message);
    auto json = tee::collateral_to_json(*made);
    if (auto written = write_file_atomic(output, as_bytes(json), 0644); !written) return command.fail(written.error().message);
    fmt::print("wrote {} ({} bytes)\n", output, json.size());
    return exit_ok;
}

}  // namespace dstack::applets::verify
