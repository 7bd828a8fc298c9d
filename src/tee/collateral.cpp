// dcap-qvl's collateral JSON (QuoteCollateralV3) and the PCS responses that wrap signed documents.
// The signed documents travel as exact text: nothing here re-serialises them.
#include "dstack/tee/collateral.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include "dstack/base/hex.hpp"
#include "dstack/base/json-escape.hpp"
#include "dstack/crypto/hash.hpp"

namespace dstack::tee {
namespace {

// Iterative parsing keeps deeply nested hostile input off the call stack; encoding validation
// keeps invalid UTF-8 out of the PEM and JSON strings we hand on.
constexpr unsigned json_parse_flags = rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;

Result<void> parse_json(rapidjson::Document& document, std::string_view text, std::string_view what) {
    document.Parse<json_parse_flags>(text.data(), text.size());
    if (document.HasParseError())
        return make_error("{} is not valid JSON: {} at offset {}", what, rapidjson::GetParseError_En(document.GetParseError()),
                          document.GetErrorOffset());
    if (!document.IsObject()) return make_error("{} is not a JSON object", what);
    return {};
}

// Duplicate keys would let two readers see two different documents; refuse them.
Result<const rapidjson::Value*> find_member(const rapidjson::Value& object, std::string_view key, std::string_view what) {
    const rapidjson::Value* found = nullptr;
    for (auto it = object.MemberBegin(); it != object.MemberEnd(); ++it) {
        if (std::string_view(it->name.GetString(), it->name.GetStringLength()) != key) continue;
        if (found != nullptr) return make_error("{}: duplicate key '{}'", what, key);
        found = &it->value;
    }
    return found;
}

std::string_view string_view_of(const rapidjson::Value& value) { return {value.GetString(), value.GetStringLength()}; }

Result<std::string> required_string(const rapidjson::Value& object, std::string_view key) {
    DSTACK_TRY(auto value, find_member(object, key, "collateral"));
    if (value == nullptr) return make_error("collateral: missing key '{}'", key);
    if (!value->IsString()) return make_error("collateral: key '{}' must be a string", key);
    return std::string(string_view_of(*value));
}

Result<Bytes> required_hex(const rapidjson::Value& object, std::string_view key) {
    DSTACK_TRY(auto value, find_member(object, key, "collateral"));
    if (value == nullptr) return make_error("collateral: missing key '{}'", key);
    if (!value->IsString()) return make_error("collateral: key '{}' must be a hex string", key);
    auto bytes = hex_decode(string_view_of(*value));
    if (!bytes) return std::move(bytes).take_error().context(fmt::format("collateral: key '{}'", key));
    return std::move(*bytes);
}

void append_member(std::string& out, std::string_view key, std::string_view text) {
    if (out.size() > 1) out.push_back(',');
    append_json_string_literal(out, key);
    out.push_back(':');
    append_json_string_literal(out, text);
}

void hash_field(crypto::Hasher& hasher, ByteView field) {
    std::uint8_t length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(field.size()) >> (56 - 8 * i));
    hasher.update(length).update(field);
}

// A scanner over JSON text that RapidJSON has already accepted: it only needs to find where each
// value ends, but stays within bounds whatever it is given.
class RawJsonScanner {
public:
    explicit RawJsonScanner(std::string_view text) : text_(text) {}

    std::size_t position() const { return pos_; }
    bool at_end() const { return pos_ >= text_.size(); }
    char peek() const { return at_end() ? '\0' : text_[pos_]; }
    void skip_whitespace() {
        while (!at_end() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r')) ++pos_;
    }
    bool consume(char c) {
        skip_whitespace();
        if (peek() != c) return false;
        ++pos_;
        return true;
    }
    // Skips one string literal (pos_ on its opening quote); false if it does not close.
    bool skip_string() {
        ++pos_;
        while (!at_end()) {
            char c = text_[pos_++];
            if (c == '\\') {
                if (at_end()) return false;
                ++pos_;
            } else if (c == '"') {
                return true;
            }
        }
        return false;
    }
    // Skips one value of any kind; brackets inside strings do not count.
    bool skip_value() {
        skip_whitespace();
        char first = peek();
        if (first == '"') return skip_string();
        if (first == '{' || first == '[') {
            std::size_t depth = 0;
            while (!at_end()) {
                char c = text_[pos_];
                if (c == '"') {
                    if (!skip_string()) return false;
                    continue;
                }
                ++pos_;
                if (c == '{' || c == '[') ++depth;
                if (c == '}' || c == ']') {
                    if (--depth == 0) return true;
                }
            }
            return false;
        }
        std::size_t start = pos_;
        while (!at_end() && text_[pos_] != ',' && text_[pos_] != '}' && text_[pos_] != ']' && text_[pos_] != ' ' &&
               text_[pos_] != '\t' && text_[pos_] != '\n' && text_[pos_] != '\r')
            ++pos_;
        return pos_ > start;
    }

private:
    std::string_view text_;
    std::size_t pos_ = 0;
};

// The key as JSON defines it (escapes decoded), from its literal.
std::optional<std::string> decode_key_literal(std::string_view literal) {
    if (literal.size() >= 2 && literal.find('\\') == std::string_view::npos)
        return std::string(literal.substr(1, literal.size() - 2));
    rapidjson::Document key;
    key.Parse<json_parse_flags>(literal.data(), literal.size());
    if (key.HasParseError() || !key.IsString()) return std::nullopt;
    return std::string(string_view_of(key));
}

// The byte span of the value under `key` in the top-level object of `text`.
Result<std::string_view> raw_member_span(std::string_view text, std::string_view key) {
    RawJsonScanner scanner(text);
    std::optional<std::string_view> found;
    auto malformed = [] { return make_error("signed document: cannot delimit the top-level members"); };
    if (!scanner.consume('{')) return malformed();
    if (scanner.consume('}')) return make_error("signed document: no '{}' member", key);
    do {
        scanner.skip_whitespace();
        std::size_t key_start = scanner.position();
        if (scanner.peek() != '"' || !scanner.skip_string()) return malformed();
        auto name = decode_key_literal(text.substr(key_start, scanner.position() - key_start));
        if (!name) return malformed();
        if (!scanner.consume(':')) return malformed();
        scanner.skip_whitespace();
        std::size_t value_start = scanner.position();
        if (!scanner.skip_value()) return malformed();
        if (*name == key) {
            if (found) return make_error("signed document: duplicate key '{}'", key);
            found = text.substr(value_start, scanner.position() - value_start);
        }
    } while (scanner.consume(','));
    if (!scanner.consume('}')) return malformed();
    if (!found) return make_error("signed document: no '{}' member", key);
    return *found;
}

}  // namespace

Result<Collateral> parse_collateral_json(std::string_view json) {
    if (json.size() > max_collateral_size)
        return make_error("collateral of {} bytes exceeds the {}-byte limit", json.size(), max_collateral_size);
    rapidjson::Document document;
    DSTACK_CHECK(parse_json(document, json, "collateral"));
    Collateral collateral;
    DSTACK_TRY(collateral.pck_crl_issuer_chain, required_string(document, "pck_crl_issuer_chain"));
    DSTACK_TRY(collateral.root_ca_crl, required_hex(document, "root_ca_crl"));
    DSTACK_TRY(collateral.pck_crl, required_hex(document, "pck_crl"));
    DSTACK_TRY(collateral.tcb_info_issuer_chain, required_string(document, "tcb_info_issuer_chain"));
    DSTACK_TRY(collateral.tcb_info, required_string(document, "tcb_info"));
    DSTACK_TRY(collateral.tcb_info_signature, required_hex(document, "tcb_info_signature"));
    DSTACK_TRY(collateral.qe_identity_issuer_chain, required_string(document, "qe_identity_issuer_chain"));
    DSTACK_TRY(collateral.qe_identity, required_string(document, "qe_identity"));
    DSTACK_TRY(collateral.qe_identity_signature, required_hex(document, "qe_identity_signature"));
    // An Option in dcap-qvl: absent and null both mean "take the chain from the quote".
    DSTACK_TRY(auto chain, find_member(document, "pck_certificate_chain", "collateral"));
    if (chain != nullptr && !chain->IsNull()) {
        if (!chain->IsString()) return make_error("collateral: key 'pck_certificate_chain' must be a string");
        collateral.pck_certificate_chain = std::string(string_view_of(*chain));
    }
    return collateral;
}

std::string collateral_to_json(const Collateral& collateral) {
    std::string out = "{";
    append_member(out, "pck_crl_issuer_chain", collateral.pck_crl_issuer_chain);
    append_member(out, "root_ca_crl", hex_encode(collateral.root_ca_crl));
    append_member(out, "pck_crl", hex_encode(collateral.pck_crl));
    append_member(out, "tcb_info_issuer_chain", collateral.tcb_info_issuer_chain);
    append_member(out, "tcb_info", collateral.tcb_info);
    append_member(out, "tcb_info_signature", hex_encode(collateral.tcb_info_signature));
    append_member(out, "qe_identity_issuer_chain", collateral.qe_identity_issuer_chain);
    append_member(out, "qe_identity", collateral.qe_identity);
    append_member(out, "qe_identity_signature", hex_encode(collateral.qe_identity_signature));
    if (collateral.pck_certificate_chain) append_member(out, "pck_certificate_chain", *collateral.pck_certificate_chain);
    out.push_back('}');
    return out;
}

Bytes Collateral::fingerprint() const {
    crypto::Hasher hasher(crypto::HashAlgorithm::sha256);
    hasher.update(as_bytes("dstack collateral fingerprint v1"));
    hash_field(hasher, as_bytes(pck_crl_issuer_chain));
    hash_field(hasher, root_ca_crl);
    hash_field(hasher, pck_crl);
    hash_field(hasher, as_bytes(tcb_info_issuer_chain));
    hash_field(hasher, as_bytes(tcb_info));
    hash_field(hasher, tcb_info_signature);
    hash_field(hasher, as_bytes(qe_identity_issuer_chain));
    hash_field(hasher, as_bytes(qe_identity));
    hash_field(hasher, qe_identity_signature);
    const std::uint8_t present = pck_certificate_chain ? 1 : 0;
    hasher.update(ByteView(&present, 1));
    if (pck_certificate_chain) hash_field(hasher, as_bytes(*pck_certificate_chain));
    return hasher.finish();
}

Result<SignedDocument> split_signed_document(std::string_view response, std::string_view key) {
    if (response.size() > max_collateral_size)
        return make_error("signed document of {} bytes exceeds the {}-byte limit", response.size(), max_collateral_size);
    rapidjson::Document document;
    DSTACK_CHECK(parse_json(document, response, "signed document"));
    DSTACK_TRY(auto body, find_member(document, key, "signed document"));
    if (body == nullptr) return make_error("signed document: missing key '{}'", key);
    if (!body->IsObject()) return make_error("signed document: key '{}' must be an object", key);
    DSTACK_TRY(auto signature, find_member(document, "signature", "signed document"));
    if (signature == nullptr) return make_error("signed document: missing key 'signature'");
    if (!signature->IsString()) return make_error("signed document: key 'signature' must be a hex string");
    auto signature_bytes = hex_decode(string_view_of(*signature));
    if (!signature_bytes) return std::move(signature_bytes).take_error().context("signed document: key 'signature'");
    DSTACK_TRY(auto span, raw_member_span(response, key));
    return SignedDocument{std::string(span), std::move(*signature_bytes)};
}

}  // namespace dstack::tee
