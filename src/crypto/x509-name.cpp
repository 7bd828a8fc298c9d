#include "x509-internal.hpp"

#include <arpa/inet.h>

#include <cstring>

#include <mbedtls/oid.h>
#include <mbedtls/platform.h>
#include <mbedtls/x509_crt.h>

#include "backend.hpp"
#include "dstack/crypto/pem.hpp"

namespace dstack::crypto {

X509Extension dstack_extension(std::string oid, ByteView payload) {
    Bytes value{0x04};
    std::size_t size = payload.size();
    if (size < 0x80) {
        value.push_back(static_cast<std::uint8_t>(size));
    } else {
        Bytes length;
        for (std::size_t rest = size; rest != 0; rest >>= 8) length.insert(length.begin(), static_cast<std::uint8_t>(rest));
        value.push_back(static_cast<std::uint8_t>(0x80 | length.size()));
        value.insert(value.end(), length.begin(), length.end());
    }
    value.insert(value.end(), payload.begin(), payload.end());
    return {std::move(oid), std::move(value), false};
}

Result<Bytes> unwrap_dstack_extension(ByteView value) {
    unsigned char* p = const_cast<unsigned char*>(value.data());
    const unsigned char* end = p + value.size();
    std::size_t length = 0;
    if (mbedtls_asn1_get_tag(&p, end, &length, MBEDTLS_ASN1_OCTET_STRING) != 0 || p + length != end)
        return make_error("extension value is not a single DER OCTET STRING (dstack's inner wrapping)");
    return Bytes(p, p + length);
}

Result<Bytes> oid_from_dotted(std::string_view dotted) {
    mbedtls_asn1_buf oid{};
    int rc = mbedtls_oid_from_numeric_string(&oid, dotted.data(), dotted.size());
    if (rc != 0) return make_error("\"{}\" is not a valid dotted OID", dotted);
    Bytes out(oid.p, oid.p + oid.len);
    mbedtls_free(oid.p);
    return out;
}

Result<std::string> oid_to_dotted(ByteView der) {
    mbedtls_asn1_buf oid{MBEDTLS_ASN1_OID, der.size(), const_cast<unsigned char*>(der.data())};
    char text[256];
    int rc = mbedtls_oid_get_numeric_string(text, sizeof text, &oid);
    if (rc < 0) return make_error("malformed OID");
    return std::string(text, static_cast<std::size_t>(rc));
}

namespace detail {

Result<void> load_private_key(PkContext& context, const P256PrivateKey& key) {
    DSTACK_CHECK(ensure_psa());
    // mbedTLS signs through the key's own PSA handle: no copy of the scalar, and the key's policy
    // (randomized ECDSA) holds, so the P-256 engine makes the signature.
    int rc = mbedtls_pk_setup_opaque(&context.pk, psa_key_id(key));
    if (rc != 0) return mbedtls_error("preparing signing key", rc);
    return {};
}

Result<void> load_public_key(PkContext& context, ByteView spki_der) {
    DSTACK_CHECK(ensure_psa());
    int rc = mbedtls_pk_parse_public_key(&context.pk, spki_der.data(), spki_der.size());
    if (rc != 0) return mbedtls_error("parsing SubjectPublicKeyInfo", rc);
    return {};
}

namespace {

mbedtls_asn1_named_data* new_name_entry(const char* oid, std::size_t oid_length, int tag, std::string_view value) {
    auto* node = static_cast<mbedtls_asn1_named_data*>(mbedtls_calloc(1, sizeof(mbedtls_asn1_named_data)));
    if (!node) return nullptr;
    node->oid.tag = MBEDTLS_ASN1_OID;
    node->oid.len = oid_length;
    node->oid.p = static_cast<unsigned char*>(mbedtls_calloc(1, oid_length ? oid_length : 1));
    // Never a null pointer, even for an empty value: the writer memcpy()s from it.
    node->val.p = static_cast<unsigned char*>(mbedtls_calloc(1, value.empty() ? 1 : value.size()));
    if (!node->oid.p || !node->val.p) {
        mbedtls_free(node->oid.p);
        mbedtls_free(node->val.p);
        mbedtls_free(node);
        return nullptr;
    }
    std::memcpy(node->oid.p, oid, oid_length);
    node->val.tag = tag;
    node->val.len = value.size();
    if (!value.empty()) std::memcpy(node->val.p, value.data(), value.size());
    return node;
}

}  // namespace

Result<mbedtls_asn1_named_data*> build_name_list(const DistinguishedName& name) {
    mbedtls_asn1_named_data* head = nullptr;
    auto push = [&](const char* oid, std::size_t oid_length, const std::string& value) -> bool {
        auto* node = new_name_entry(oid, oid_length, MBEDTLS_ASN1_UTF8_STRING, value);
        if (!node) return false;
        node->next = head;
        head = node;
        return true;
    };
    // Writers emit the list back to front: push in encoding order so that O comes before CN.
    bool ok = true;
    if (name.organization)
        ok = ok && push(MBEDTLS_OID_AT_ORGANIZATION, MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_ORGANIZATION), *name.organization);
    if (name.common_name) ok = ok && push(MBEDTLS_OID_AT_CN, MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_CN), *name.common_name);
    if (!ok) {
        mbedtls_asn1_free_named_data_list(&head);
        return make_error("out of memory building a distinguished name");
    }
    return head;
}

Result<mbedtls_asn1_named_data*> copy_name_list(const mbedtls_x509_name* parsed) {
    mbedtls_asn1_named_data* head = nullptr;
    for (const mbedtls_x509_name* cur = parsed; cur != nullptr; cur = cur->next) {
        if (cur->oid.p == nullptr) continue;  // mbedTLS's head node of an empty name
        if (cur->next_merged) {
            mbedtls_asn1_free_named_data_list(&head);
            return make_error("issuer names with multi-valued RDNs are not supported");
        }
        auto* node = new_name_entry(reinterpret_cast<const char*>(cur->oid.p), cur->oid.len, cur->val.tag,
                                    std::string_view(reinterpret_cast<const char*>(cur->val.p), cur->val.len));
        if (!node) {
            mbedtls_asn1_free_named_data_list(&head);
            return make_error("out of memory copying a distinguished name");
        }
        node->next = head;
        head = node;
    }
    return head;
}

Result<SanList> SanList::build(const std::vector<std::string>& names) {
    SanList list;
    list.nodes_.resize(names.size());
    for (std::size_t i = 0; i < names.size(); ++i) {
        const std::string& name = names[i];
        if (name.empty()) return make_error("empty subject alternative name");
        auto& node = list.nodes_[i];
        std::memset(&node, 0, sizeof node);
        unsigned char address[16];
        if (inet_pton(AF_INET, name.c_str(), address) == 1) {
            node.node.type = MBEDTLS_X509_SAN_IP_ADDRESS;
            list.storage_.emplace_back(address, address + 4);
        } else if (inet_pton(AF_INET6, name.c_str(), address) == 1) {
            node.node.type = MBEDTLS_X509_SAN_IP_ADDRESS;
            list.storage_.emplace_back(address, address + 16);
        } else {
            node.node.type = MBEDTLS_X509_SAN_DNS_NAME;
            list.storage_.emplace_back(name.begin(), name.end());
        }
        node.node.san.unstructured_name.p = list.storage_.back().data();
        node.node.san.unstructured_name.len = list.storage_.back().size();
        // The writers emit the list back to front: link it in reverse so the order is kept.
        node.next = i > 0 ? &list.nodes_[i - 1] : nullptr;
    }
    return list;
}

std::vector<std::string> read_subject_alt_names(const mbedtls_x509_sequence* names) {
    std::vector<std::string> out;
    for (const mbedtls_x509_sequence* cur = names; cur != nullptr && cur->buf.p != nullptr; cur = cur->next) {
        mbedtls_x509_subject_alternative_name san;
        if (mbedtls_x509_parse_subject_alt_name(&cur->buf, &san) != 0) continue;  // types we do not read
        const auto& raw = san.san.unstructured_name;
        if (san.type == MBEDTLS_X509_SAN_DNS_NAME) {
            out.emplace_back(reinterpret_cast<const char*>(raw.p), raw.len);
        } else if (san.type == MBEDTLS_X509_SAN_IP_ADDRESS && (raw.len == 4 || raw.len == 16)) {
            char text[INET6_ADDRSTRLEN];
            if (inet_ntop(raw.len == 4 ? AF_INET : AF_INET6, raw.p, text, sizeof text)) out.emplace_back(text);
        }
        mbedtls_x509_free_subject_alt_name(&san);
    }
    return out;
}

DistinguishedName read_name(const mbedtls_x509_name* name) {
    DistinguishedName out;
    for (const mbedtls_x509_name* cur = name; cur != nullptr; cur = cur->next) {
        if (cur->oid.p == nullptr) continue;
        std::string value(reinterpret_cast<const char*>(cur->val.p), cur->val.len);
        if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &cur->oid) == 0 && !out.common_name) out.common_name = value;
        if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_ORGANIZATION, &cur->oid) == 0 && !out.organization) out.organization = value;
    }
    return out;
}

std::string name_text(const mbedtls_x509_name* name) {
    char text[1024];
    int rc = mbedtls_x509_dn_gets(text, sizeof text, name);
    return rc < 0 ? std::string() : std::string(text, static_cast<std::size_t>(rc));
}

}  // namespace detail
}  // namespace dstack::crypto
