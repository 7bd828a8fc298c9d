// Helpers shared by the crypto unit tests.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include <doctest/doctest.h>

#include "dstack/base/bytes.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "../vectors.hpp"

namespace dstack::crypto::test {

inline Bytes unhex(std::string_view text) {
    auto bytes = hex_decode(text);
    REQUIRE_MESSAGE(bytes.ok(), "bad hex in test: ", text);
    return *bytes;
}

using dstack::test_vectors::vector_missing;
using dstack::test_vectors::vectors_dir;

// Reads a vector file; when it is missing, says so loudly and returns nullopt so that the test
// returns early: it is then reported as skipped in the log, never silently passed.
inline std::optional<std::string> read_vector(const std::string& relative) {
    auto path = vectors_dir() / relative;
    auto text = read_text_file(path, 16 * 1024 * 1024);
    if (!text) {
        std::fprintf(stderr, "\n*** SKIPPED: test vector %s missing (%s); set DSTACK_VECTORS ***\n\n",
                     path.c_str(), text.error().message.c_str());
        MESSAGE("SKIPPED: test vector missing: ", path.string());
        return std::nullopt;
    }
    return *text;
}

// Runs a shell command, returning its exit status and combined output.
struct CommandResult {
    int status = -1;
    std::string output;
};

inline CommandResult run_command(const std::string& command) {
    CommandResult result;
    FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
    if (!pipe) return result;
    char buffer[4096];
    std::size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, n);
    result.status = ::pclose(pipe);
    return result;
}

inline bool have_openssl() {
    if (run_command("openssl version").status == 0) return true;
    std::fprintf(stderr, "\n*** SKIPPED: the openssl command is not installed; cross-checks not run ***\n\n");
    MESSAGE("SKIPPED: openssl CLI not found");
    return false;
}

}  // namespace dstack::crypto::test
