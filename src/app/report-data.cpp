#include "dstack/app/report-data.hpp"

#include <algorithm>

#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/keccak.hpp"

namespace dstack::app {
namespace {

using HashFunction = Bytes (*)(ByteView);

struct NamedHash {
    std::string_view name;
    HashFunction function;
};

// The names upstream's QuoteContentType accepts; every digest is at most 64 bytes.
constexpr NamedHash named_hashes[] = {
    {"sha256", crypto::sha256},     {"sha384", crypto::sha384},       {"sha512", crypto::sha512},
    {"sha3-256", crypto::sha3_256}, {"sha3-384", crypto::sha3_384},   {"sha3-512", crypto::sha3_512},
    {"keccak256", crypto::keccak256}, {"keccak384", crypto::keccak384}, {"keccak512", crypto::keccak512},
};

ReportData padded(ByteView data) {
    ReportData out{};
    std::copy(data.begin(), data.end(), out.begin());
    return out;
}

}  // namespace

std::string_view effective_hash_algorithm(std::string_view algorithm) {
    return algorithm.empty() ? std::string_view("sha512") : algorithm;
}

Result<ReportData> report_data_with_hash(std::string_view tag, ByteView content, std::string_view algorithm) {
    algorithm = effective_hash_algorithm(algorithm);
    if (algorithm == "raw") {
        if (content.size() != ReportData{}.size()) return make_error("invalid content length");
        return padded(content);
    }
    for (const auto& named : named_hashes) {
        if (named.name == algorithm) return padded(named.function(concat({as_bytes(tag), as_bytes(":"), content})));
    }
    return make_error("invalid hash algorithm");
}

Result<ReportData> pad_report_data(ByteView data) {
    if (data.size() > ReportData{}.size()) return make_error("Report data is too long");
    return padded(data);
}

}  // namespace dstack::app
