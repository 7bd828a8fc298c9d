// dcap-qvl's collateral JSON (QuoteCollateralV3) and the PCS responses that wrap signed documents.
// The signed documents travel as exact text: nothing here re-serialises them.
#include "dstack/tee/collateral.hpp"

#include "dstack/base/hex.hpp"
#include "dstack/base/json-escape.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/crypto/hash.hpp"

namespace dstack::tee {
namespace {

// Collateral and PCS responses are flat objects; the limit leaves room for unknown members.
constexpr json::ReadLimits json_limits{max_collateral_size, 32};

// The document (duplicate keys refused at any depth, so that no two readers disagree), checked to
// be an object.
Result<json::Document> read_object(std::string_view text, std::string_view what) {
    auto document = json::read_json(text, json_limits);
    if (!document) return std::move(document).take_error().context(what);
    if (!document->root().is_object()) return make_error("{} is not a JSON object", what);
    return document;
}

json::Object object_of(const json::Document& document) { return *document.root().object(); }

// Collateral's own wording for its errors ("missing key", "must be a string"), kept for the
// callers and tests that know it.
Result<json::Value> required_member(const json::Object& object, std::string_view key, std::string_view what) {
    auto value = object.required(key);
    if (!value) return make_error("{}: missing key '{}'", what, key);
    return value;
}

Result<std::string> required_string(const json::Object& object, std::string_view key) {
    DSTACK_TRY(auto value, required_member(object, key, "collateral"));
    if (!value.is_string()) return make_error("collateral: key '{}' must be a string", key);
    return *value.string();
}

Result<Bytes> required_hex(const json::Object& object, std::string_view key, std::string_view what) {
    DSTACK_TRY(auto value, required_member(object, key, what));
    if (!value.is_string()) return make_error("{}: key '{}' must be a hex string", what, key);
    auto bytes = hex_decode(*value.string());
    if (!bytes) return std::move(bytes).take_error().context(fmt::format("{}: key '{}'", what, key));
    return bytes;
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
    auto key = json::read_json(literal, {literal.size(), 0});
    if (!key) return std::nullopt;
    auto text = key->root().string();
    if (!text) return std::nullopt;
    return std::move(*text);
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
            // read_json has refused duplicates already; the span finder does not rely on it.
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
    DSTACK_TRY(auto document, read_object(json, "collateral"));
    auto object = object_of(document);
    Collateral collateral;
    DSTACK_TRY(collateral.pck_crl_issuer_chain, required_string(object, "pck_crl_issuer_chain"));
    DSTACK_TRY(collateral.root_ca_crl, required_hex(object, "root_ca_crl", "collateral"));
    DSTACK_TRY(collateral.pck_crl, required_hex(object, "pck_crl", "collateral"));
    DSTACK_TRY(collateral.tcb_info_issuer_chain, required_string(object, "tcb_info_issuer_chain"));
    DSTACK_TRY(collateral.tcb_info, required_string(object, "tcb_info"));
    DSTACK_TRY(collateral.tcb_info_signature, required_hex(object, "tcb_info_signature", "collateral"));
    DSTACK_TRY(collateral.qe_identity_issuer_chain, required_string(object, "qe_identity_issuer_chain"));
    DSTACK_TRY(collateral.qe_identity, required_string(object, "qe_identity"));
    DSTACK_TRY(collateral.qe_identity_signature, required_hex(object, "qe_identity_signature", "collateral"));
    // An Option in dcap-qvl: absent and null both mean "take the chain from the quote".
    if (auto chain = object.optional("pck_certificate_chain")) {
        if (!chain->is_string()) return make_error("collateral: key 'pck_certificate_chain' must be a string");
        collateral.pck_certificate_chain = *chain->string();
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
    DSTACK_TRY(auto document, read_object(response, "signed document"));
    auto object = object_of(document);
    DSTACK_TRY(auto body, required_member(object, key, "signed document"));
    if (!body.is_object()) return make_error("signed document: key '{}' must be an object", key);
    DSTACK_TRY(auto signature, required_hex(object, "signature", "signed document"));
    DSTACK_TRY(auto span, raw_member_span(response, key));
    return SignedDocument{std::string(span), std::move(signature)};
}

}  // namespace dstack::tee
