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

// Reads a vector file. Tests that use it carry the skip(vector_missing(...)) decorator, so a
// missing vector is already counted as skipped; failing to read one that exists is a failure.
inline std::optional<std::string> read_vector(const std::string& relative) {
    auto path = vectors_dir() / relative;
    auto text = read_text_file(path, 16 * 1024 * 1024);
    if (!text) {
        FAIL_CHECK("cannot read test vector " << path.string() << ": " << text.error().message);
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
    // scripts/setup installs openssl: without it the cross-checks were not made, which is a failure.
    FAIL_CHECK("the openssl command is not installed; run scripts/setup");
    return false;
}

}  // namespace dstack::crypto::test
