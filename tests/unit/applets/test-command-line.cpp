// The one command-line set-up every applet uses: --help, --version, usage errors, subcommands.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <string>
#include <filesystem>
#include <vector>

#include <CLI/CLI.hpp>

#include "support/command-line.hpp"

using namespace dstack::applets;

namespace {

// argv for CLI11 (it wants char**).
struct Argv {
    explicit Argv(std::vector<std::string> args) : storage(std::move(args)) {
        for (auto& arg : storage) pointers.push_back(arg.data());
    }
    int argc() { return static_cast<int>(pointers.size()); }
    char** argv() { return pointers.data(); }
    std::vector<std::string> storage;
    std::vector<char*> pointers;
};

// Runs `f` with stdout and stderr sent to files and returns what each got.
template <typename F>
std::pair<std::string, std::string> captured(F&& f) {
    std::fflush(stdout);
    std::fflush(stderr);
    FILE* out = std::tmpfile();
    FILE* err = std::tmpfile();
    int saved_out = ::dup(1), saved_err = ::dup(2);
    ::dup2(::fileno(out), 1);
    ::dup2(::fileno(err), 2);
    f();
    std::fflush(stdout);
    std::fflush(stderr);
    ::dup2(saved_out, 1);
    ::dup2(saved_err, 2);
    ::close(saved_out);
    ::close(saved_err);
    auto slurp = [](FILE* file) {
        std::string text;
        std::rewind(file);
        char buffer[4096];
        while (std::size_t n = std::fread(buffer, 1, sizeof buffer, file)) text.append(buffer, n);
        std::fclose(file);
        return text;
    };
    return {slurp(out), slurp(err)};
}

int fake_sub_main(std::string_view, int argc, char** argv) { return argc == 2 && std::string_view(argv[0]) == "run" ? 40 : 41; }
int fake_fallback(std::string_view, int argc, char**) { return 50 + argc; }

}  // namespace

TEST_CASE("command line: --help prints the usage text, --version the binary's version, exit 0") {
    Command command("dstack demo", "usage: dstack demo [OPTIONS]\n", "dstack demo --help");
    Argv help({"demo", "--help"});
    std::optional<int> done;
    auto [out, err] = captured([&] { done = command.parse(help.argc(), help.argv()); });
    REQUIRE(done);
    CHECK(*done == exit_ok);
    CHECK(out == "usage: dstack demo [OPTIONS]\n");
    CHECK(err.empty());

    Command again("dstack demo", "usage\n", "dstack demo --help");
    Argv version({"demo", "--version"});
    auto [vout, verr] = captured([&] { done = again.parse(version.argc(), version.argv()); });
    REQUIRE(done);
    CHECK(*done == exit_ok);
    CHECK(vout.find("dstack") != std::string::npos);
}

TEST_CASE("command line: a usage error names the command and the problem, points to --help, exit 2") {
    Command command("dstack demo serve", "usage\n", "dstack demo --help");
    std::string listen;
    command.cli().add_option("--listen", listen);
    Argv bad({"serve", "--no-such-flag"});
    std::optional<int> done;
    auto [out, err] = captured([&] { done = command.parse(bad.argc(), bad.argv()); });
    REQUIRE(done);
    CHECK(*done == exit_usage);
    CHECK(out.empty());
    CHECK(err.find("dstack demo serve: ") == 0);
    CHECK(err.find("--no-such-flag") != std::string::npos);
    CHECK(err.find("(see dstack demo --help)") != std::string::npos);

    Command ok("dstack demo serve", "usage\n", "dstack demo --help");
    ok.cli().add_option("--listen", listen);
    Argv good({"serve", "--listen", "127.0.0.1:0"});
    CHECK_FALSE(ok.parse(good.argc(), good.argv()));
    CHECK(listen == "127.0.0.1:0");
}

TEST_CASE("command line: subcommands are dispatched by name, others reach the fallback or a usage error") {
    const Subcommand subcommands[] = {{"run", fake_sub_main}};
    Argv run({"demo", "run", "x"});
    CHECK(run_subcommand("demo", "usage\n", subcommands, fake_fallback, run.argc(), run.argv()) == 40);
    Argv other({"demo", "input.bin"});
    CHECK(run_subcommand("demo", "usage\n", subcommands, fake_fallback, other.argc(), other.argv()) == 52);

    Argv unknown({"demo", "nope"});
    int status = 0;
    auto [out, err] = captured([&] { status = run_subcommand("demo", "usage\n", subcommands, nullptr, unknown.argc(), unknown.argv()); });
    CHECK(status == exit_usage);
    CHECK(err.find("unknown subcommand 'nope'") != std::string::npos);
    CHECK(err.find("subcommands: run") != std::string::npos);
}

TEST_CASE("command line: a not-implemented applet answers --help and otherwise fails with exit 2") {
    Argv help({"agent", "--help"});
    int status = -1;
    auto [out, err] = captured([&] { status = not_implemented("agent", "usage: dstack agent\n", help.argc(), help.argv()); });
    CHECK(status == exit_ok);
    CHECK(out.find("not implemented yet") != std::string::npos);
    Argv run({"agent", "--listen", "x"});
    auto [rout, rerr] = captured([&] { status = not_implemented("agent", "usage: dstack agent\n", run.argc(), run.argv()); });
    CHECK(status == exit_usage);
    CHECK(rerr == "dstack agent: not implemented yet\n");
}

#include "support/daemon-options.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/log.hpp"

TEST_CASE("config options: TOML keys fill the options the command line left unset, flags win, bad values name the key") {
    auto dir = std::filesystem::temp_directory_path() / fmt::format("dstack-config-{}", ::getpid());
    std::filesystem::create_directories(dir);
    auto path = (dir / "serve.toml").string();
    REQUIRE(dstack::write_file_atomic(path, dstack::as_bytes(std::string_view(R"(
address = "127.0.0.1"
port = 8090
image_download_url = "https://example.invalid/{OS_IMAGE_HASH}"
[attestation.urls]
pccs = "https://pccs.example"
[attestation]
allow_status = ["OutOfDate", "SWHardeningNeeded"]
typo_key = 1
)"))));
    Command command("dstack demo serve", "usage\n", "dstack demo --help");
    ConfigOptions config(command.cli());
    std::optional<std::string> pccs;
    std::vector<std::string> statuses;
    int port = 0;
    config.bind("attestation.urls.pccs", command.cli().add_option("--pccs", pccs));
    config.bind("attestation.allow_status", command.cli().add_option("--allow-status", statuses));
    config.bind("port", command.cli().add_option("--port", port));
    config.accept("address");
    config.accept_unused("image_download_url", "OS images are not measured by this build");
    Argv args({"serve", "--config", path, "--port", "9000"});
    REQUIRE_FALSE(command.parse(args.argc(), args.argv()));
    std::optional<dstack::Result<void>> applied;
    auto [out, err] = captured([&] { applied = config.apply(); });
    REQUIRE(applied);
    REQUIRE(*applied);
    CHECK(pccs == "https://pccs.example");
    CHECK(statuses == std::vector<std::string>{"OutOfDate", "SWHardeningNeeded"});
    CHECK(port == 9000);  // the command line wins
    REQUIRE(config.config());
    CHECK(**config.config()->get_string("address") == "127.0.0.1");
    CHECK(err.find("unknown key 'attestation.typo_key'") != std::string::npos);
    CHECK(err.find("'image_download_url' is accepted and not used") != std::string::npos);

    auto bad_path = (dir / "bad.toml").string();
    REQUIRE(dstack::write_file_atomic(bad_path, dstack::as_bytes(std::string_view("port = \"eighty\"\n"))));
    Command again("dstack demo serve", "usage\n", "dstack demo --help");
    ConfigOptions bad(again.cli());
    again.cli().add_option("--pccs", pccs);
    bad.bind("port", again.cli().add_option("--port", port));
    Argv bad_args({"serve", "--config", bad_path});
    REQUIRE_FALSE(again.parse(bad_args.argc(), bad_args.argv()));
    auto failed = bad.apply();
    REQUIRE_FALSE(failed);
    CHECK(failed.error().message.find("key 'port'") != std::string::npos);
    std::filesystem::remove_all(dir);
}

TEST_CASE("logging options: level and format are checked") {
    LoggingOptions options;
    options.level = "loud";
    CHECK_FALSE(apply_logging(options, "demo"));
    options.level = "debug";
    options.format = "xml";
    auto bad = apply_logging(options, "demo");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message == "--log-format: 'xml' is neither text nor json");
    options.format = "json";
    CHECK(apply_logging(options, "demo"));
    CHECK(dstack::log::settings().format == dstack::log::Format::json);
    CHECK(apply_logging(LoggingOptions{}, "dstack"));
}
