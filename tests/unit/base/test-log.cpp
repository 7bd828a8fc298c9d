#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <string>

#include "dstack/base/log.hpp"

using namespace dstack;

namespace {
// Captures what log lines reach stderr while `body` runs.
template <typename F>
std::string capture_stderr(F body) {
    std::fflush(stderr);
    int saved = dup(STDERR_FILENO);
    FILE* tmp = std::tmpfile();
    dup2(fileno(tmp), STDERR_FILENO);
    body();
    dup2(saved, STDERR_FILENO);
    close(saved);
    std::string out;
    std::rewind(tmp);
    char buffer[4096];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, tmp)) > 0) out.append(buffer, n);
    std::fclose(tmp);
    return out;
}
}  // namespace

TEST_CASE("log levels filter and text lines stay single lines") {
    auto saved = log::settings();
    log::configure({log::Level::warn, log::Format::text, "unit"});
    auto out = capture_stderr([] {
        log::info("hidden {}", 1);
        log::warn("shown {}\nforged line", 2);
    });
    log::configure(saved);
    CHECK(out.find("hidden") == std::string::npos);
    CHECK(out.find("warn  unit: shown 2\\nforged line\n") != std::string::npos);
    CHECK(std::count(out.begin(), out.end(), '\n') == 1);
}

TEST_CASE("log JSON lines escape their fields") {
    auto saved = log::settings();
    log::configure({log::Level::debug, log::Format::json, "kms"});
    auto out = capture_stderr([] { log::error("quote \"bad\"\t\x01"); });
    log::configure(saved);
    CHECK(out.starts_with("{\"ts\":\""));
    CHECK(out.find(R"("level":"error","component":"kms","msg":"quote \"bad\"\t\u0001"})") != std::string::npos);
}

TEST_CASE("log level names") {
    CHECK(*log::parse_level("debug") == log::Level::debug);
    CHECK(*log::parse_level("warning") == log::Level::warn);
    CHECK_FALSE(log::parse_level("loud").ok());
}
