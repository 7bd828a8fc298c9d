// How the verdict's parts record their checks (internal to the app layer): each check with its
// stable id (app/verdict.hpp's check_id) and its display name.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "dstack/base/hex.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/tee/dcap.hpp"

namespace dstack::app {

// A check's id and display name.
struct CheckName {
    std::string_view id;
    std::string name;
};

class CheckList {
public:
    explicit CheckList(std::vector<tee::Check>& checks) : checks_(checks) {}
    void pass(const CheckName& check, std::string detail = {}) { add(check, tee::CheckState::passed, std::move(detail)); }
    void fail(const CheckName& check, std::string detail) { add(check, tee::CheckState::failed, std::move(detail)); }
    void skip(const CheckName& check, std::string reason) { add(check, tee::CheckState::not_checked, std::move(reason)); }
    // passed when equal, failed with both values otherwise.
    void compare(const CheckName& check, ByteView expected, ByteView actual) {
        if (std::equal(expected.begin(), expected.end(), actual.begin(), actual.end()))
            pass(check, hex_encode(actual));
        else
            fail(check, fmt::format("expected {}, got {}", hex_encode(expected), hex_encode(actual)));
    }

private:
    void add(const CheckName& check, tee::CheckState state, std::string detail) {
        checks_.push_back({std::string(check.id), check.name, state, std::move(detail)});
    }
    std::vector<tee::Check>& checks_;
};

// The RA-TLS certificate checks (verdict-certificate.cpp): every certificate of the PEM valid at
// `now`, and the leaf's signature by its issuer (the next certificate) or by itself.
void check_ratls_certificates(const std::vector<crypto::Certificate>& certificates, UnixSeconds now, CheckList& checks);

}  // namespace dstack::app
