// Access to the upstream test vectors in $DSTACK_VECTORS (default ../shared/vectors, next to the
// project). A test whose vectors are missing says so loudly and is counted as skipped by doctest,
// never as passed: decorate it with
//   TEST_CASE("..." * doctest::skip(dstack::test_vectors::vector_missing("dstack/simulator/appkeys.json")))
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace dstack::test_vectors {

inline std::filesystem::path vectors_dir() {
    if (const char* env = std::getenv("DSTACK_VECTORS"); env && *env) return env;
    return std::filesystem::path(DSTACK_SOURCE_ROOT) / ".." / "shared" / "vectors";
}

inline std::filesystem::path vector_path(const std::string& relative) { return vectors_dir() / relative; }

// Evaluated at start-up by the skip decorator.
inline bool vector_missing(const std::string& relative) {
    std::error_code error;
    auto path = vector_path(relative);
    if (std::filesystem::exists(path, error)) return false;
    std::fprintf(stderr, "*** SKIPPING tests that need %s: file missing; set DSTACK_VECTORS ***\n", path.c_str());
    return true;
}

}  // namespace dstack::test_vectors
