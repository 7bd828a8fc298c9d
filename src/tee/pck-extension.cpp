// The Intel SGX extension of PCK certificates. Its value is a SEQUENCE of SEQUENCE{OID, value};
// the TCB entry nests the same shape one level down. Reading uses the crypto layer's bounded DER
// reader; every value's tag and size is checked, and an OID may appear only once at each level, so that a
// certificate cannot show one FMSPC or TCB to us and another to a different verifier.
#include "dstack/tee/pck-extension.hpp"

#include <algorithm>
#include <optional>
#include <vector>

#include "dstack/base/hex.hpp"
#include "dstack/crypto/asn1.hpp"
#include "dstack/crypto/x509-name.hpp"

namespace dstack::tee {

namespace {

namespace der = crypto::der;
namespace tag = crypto::der::tag;

// DER content of 1.2.840.113741.1.13.1; every entry's OID extends it by one or two small arcs.
constexpr std::uint8_t sgx_arc[] = {0x2A, 0x86, 0x48, 0x86, 0xF8, 0x4D, 0x01, 0x0D, 0x01};

constexpr std::uint8_t arc_ppid = 1;
constexpr std::uint8_t arc_tcb = 2;
constexpr std::uint8_t arc_pce_id = 3;
constexpr std::uint8_t arc_fmspc = 4;
constexpr std::uint8_t arc_sgx_type = 5;
constexpr std::uint8_t arc_platform_instance_id = 6;
constexpr std::uint8_t arc_tcb_pce_svn = 17;
constexpr std::uint8_t arc_tcb_cpu_svn = 18;
constexpr std::size_t tcb_component_count = 16;

// Real extensions have 6 to 7 entries and a TCB of 18; this only keeps duplicate checks cheap.
constexpr std::size_t max_entries = 64;

Bytes sgx_oid(std::initializer_list<std::uint8_t> arcs) {
    Bytes oid;
    oid.reserve(sizeof(sgx_arc) + arcs.size());
    for (auto octet : sgx_arc) oid.push_back(octet);
    for (auto arc : arcs) oid.push_back(arc);
    return oid;
}

std::string oid_text(ByteView oid) {
    auto dotted = crypto::oid_to_dotted(oid);
    return dotted ? *dotted : "OID " + hex_encode(oid);
}

struct Entry {
    Bytes oid;
    der::Element value;
};

Result<der::Element> read_element(der::Reader& reader, std::string_view what) {
    auto element = reader.read();
    if (!element) return std::move(element).take_error().context(fmt::format("Intel extension: {}", what));
    return element;
}

// The SEQUENCE{OID, value} entries inside `content`, refusing repeated OIDs.
Result<std::vector<Entry>> read_entries(ByteView content, std::string_view where) {
    std::vector<Entry> entries;
    der::Reader reader(content);
    while (!reader.at_end()) {
        if (entries.size() == max_entries) return make_error("Intel extension: {} has too many entries", where);
        DSTACK_TRY(auto entry, read_element(reader, fmt::format("an entry of {}", where)));
        if (entry.tag != tag::sequence) return make_error("Intel extension: an entry of {} is not a SEQUENCE", where);
        der::Reader inner(entry.content);
        DSTACK_TRY(auto oid, read_element(inner, fmt::format("the OID of an entry of {}", where)));
        if (oid.tag != tag::oid) return make_error("Intel extension: an entry of {} does not start with an OID", where);
        Bytes oid_bytes(oid.content.begin(), oid.content.end());
        auto name = oid_text(oid_bytes);
        DSTACK_TRY(auto value, read_element(inner, fmt::format("the value of {}", name)));
        if (!inner.at_end()) return make_error("Intel extension: entry {} has data after its value", name);
        for (const auto& seen : entries) {
            if (seen.oid == oid_bytes) return make_error("Intel extension: duplicate entry {}", name);
        }
        entries.push_back({std::move(oid_bytes), value});
    }
    return entries;
}

const Entry* find(const std::vector<Entry>& entries, const Bytes& oid) {
    auto found = std::find_if(entries.begin(), entries.end(), [&oid](const Entry& entry) { return entry.oid == oid; });
    return found == entries.end() ? nullptr : &*found;
}

Error missing(std::initializer_list<Bytes> path) {
    std::string names;
    for (const auto& oid : path) names += (names.empty() ? "" : ", ") + oid_text(oid);
    return make_error("Intel extension path [{}] is missing", names);
}

Result<ByteView> require_tag(const Entry& entry, std::uint8_t expected) {
    if (entry.value.tag != expected) {
        return make_error("Intel extension: {} is not an {}", oid_text(entry.oid), der::tag_name(expected));
    }
    return entry.value.content;
}

Result<ByteView> octet_string(const Entry& entry) { return require_tag(entry, tag::octet_string); }

// INTEGER or ENUMERATED content of 1 or 2 bytes, as dcap-qvl reads PCESVN and the SGX type. DER
// makes a set top bit negative; dcap-qvl would read it as a large unsigned value, we refuse it.
std::optional<std::uint16_t> small_unsigned(ByteView content) {
    if (content.empty() || (content[0] & 0x80)) return std::nullopt;
    if (content.size() == 1) return content[0];
    if (content.size() == 2) return static_cast<std::uint16_t>((content[0] << 8) | content[1]);
    return std::nullopt;
}

template <std::size_t N>
Result<Fixed<N>> fixed_octets(const Entry& entry, std::string_view mismatch_message) {
    DSTACK_TRY(auto content, octet_string(entry));
    if (content.size() != N) return make_error("{}: {} bytes, expected {}", mismatch_message, content.size(), N);
    Fixed<N> out{};
    std::copy(content.begin(), content.end(), out.begin());
    return out;
}

Result<void> read_tcb(const Entry& tcb_entry, PckExtension& out) {
    DSTACK_TRY(auto content, require_tag(tcb_entry, tag::sequence));
    DSTACK_TRY(auto entries, read_entries(content, "the TCB"));
    auto tcb = sgx_oid({arc_tcb});
    // Exactly the 16 component SVNs, PCESVN and CPUSVN: anything else is not an Intel TCB.
    for (const auto& entry : entries) {
        bool known = entry.oid.size() == tcb.size() + 1 && std::equal(tcb.begin(), tcb.end(), entry.oid.begin()) &&
                     entry.oid.back() >= 1 && entry.oid.back() <= arc_tcb_cpu_svn;
        if (!known) return make_error("Intel extension: unexpected TCB entry {}", oid_text(entry.oid));
    }
    for (std::uint8_t arc = 1; arc <= arc_tcb_cpu_svn; ++arc) {
        auto oid = sgx_oid({arc_tcb, arc});
        const Entry* entry = find(entries, oid);
        if (!entry) return missing({tcb, oid});
        if (arc == arc_tcb_cpu_svn) {
            DSTACK_TRY(out.cpu_svn, fixed_octets<16>(*entry, "CpuSvn length mismatch"));
            continue;
        }
        DSTACK_TRY(auto value, require_tag(*entry, tag::integer));
        auto number = small_unsigned(value);
        if (arc == arc_tcb_pce_svn) {
            if (!number) {
                return make_error("PceSvn length mismatch: {} bytes, expected 1 or 2 holding a non-negative value",
                                  value.size());
            }
            out.pce_svn = *number;
        } else if (!number || *number > 0xFF || (value.size() == 2 && value[0] != 0)) {
            return make_error("Intel extension: TCB component {} is not an SVN from 0 to 255", arc);
        }
    }
    return {};
}

Bytes der_entry(const Bytes& oid, const Bytes& value) {
    return der::encode(tag::sequence, concat({der::encode(tag::oid, oid), value}));
}

}  // namespace

Result<PckExtension> parse_pck_extension_value(ByteView extension_value) {
    der::Reader reader(extension_value);
    DSTACK_TRY(auto outer, read_element(reader, "the extension value"));
    if (outer.tag != tag::sequence) return make_error("Intel extension: the value is not a SEQUENCE");
    if (!reader.at_end()) return make_error("Intel extension: {} bytes after the SEQUENCE", reader.remaining());
    DSTACK_TRY(auto entries, read_entries(outer.content, "the extension"));

    PckExtension out;
    auto required = [&entries](std::uint8_t arc) -> Result<const Entry*> {
        auto oid = sgx_oid({arc});
        const Entry* found = find(entries, oid);
        if (!found) return missing({oid});
        return found;
    };
    DSTACK_TRY(auto ppid, required(arc_ppid));
    DSTACK_TRY(auto ppid_bytes, octet_string(*ppid));
    out.ppid.assign(ppid_bytes.begin(), ppid_bytes.end());

    DSTACK_TRY(auto tcb, required(arc_tcb));
    DSTACK_CHECK(read_tcb(*tcb, out));

    DSTACK_TRY(auto pce_id, required(arc_pce_id));
    DSTACK_TRY(out.pce_id, fixed_octets<2>(*pce_id, "PceId length mismatch"));

    DSTACK_TRY(auto fmspc, required(arc_fmspc));
    DSTACK_TRY(out.fmspc, fixed_octets<6>(*fmspc, "Fmspc length mismatch"));

    DSTACK_TRY(auto sgx_type, required(arc_sgx_type));
    DSTACK_TRY(auto sgx_type_value, require_tag(*sgx_type, tag::enumerated));
    auto sgx_type_number = small_unsigned(sgx_type_value);
    if (!sgx_type_number) {
        return make_error("Intel extension: SGX type is {} bytes, expected 1 or 2 holding a non-negative value",
                          sgx_type_value.size());
    }
    out.sgx_type = *sgx_type_number;

    if (const Entry* instance = find(entries, sgx_oid({arc_platform_instance_id}))) {
        DSTACK_TRY(auto instance_id, octet_string(*instance));
        out.platform_instance_id = Bytes(instance_id.begin(), instance_id.end());
    }
    return out;
}

Result<PckExtension> parse_pck_extension(const crypto::Certificate& pck_certificate) {
    auto value = pck_certificate.extension(sgx_extension_oid);
    if (!value) return make_error("Intel extension not found");
    return parse_pck_extension_value(*value);
}

Bytes encode_pck_extension_value(const PckExtension& extension, const Fixed<16>& tcb_components) {
    Bytes tcb_entries;
    for (std::size_t i = 0; i < tcb_component_count; ++i) {
        auto arc = static_cast<std::uint8_t>(i + 1);
        auto component = der_entry(sgx_oid({arc_tcb, arc}), der::encode_unsigned(tag::integer, tcb_components[i]));
        tcb_entries.insert(tcb_entries.end(), component.begin(), component.end());
    }
    tcb_entries = concat({tcb_entries,
                          der_entry(sgx_oid({arc_tcb, arc_tcb_pce_svn}), der::encode_unsigned(tag::integer, extension.pce_svn)),
                          der_entry(sgx_oid({arc_tcb, arc_tcb_cpu_svn}), der::encode(tag::octet_string, extension.cpu_svn))});

    auto sgx_type = static_cast<std::uint32_t>(std::max(extension.sgx_type, 0));
    Bytes entries = concat({
        der_entry(sgx_oid({arc_ppid}), der::encode(tag::octet_string, extension.ppid)),
        der_entry(sgx_oid({arc_tcb}), der::encode(tag::sequence, tcb_entries)),
        der_entry(sgx_oid({arc_pce_id}), der::encode(tag::octet_string, extension.pce_id)),
        der_entry(sgx_oid({arc_fmspc}), der::encode(tag::octet_string, extension.fmspc)),
        der_entry(sgx_oid({arc_sgx_type}), der::encode_unsigned(tag::enumerated, sgx_type)),
    });
    if (extension.platform_instance_id) {
        auto instance = der_entry(sgx_oid({arc_platform_instance_id}),
                              der::encode(tag::octet_string, *extension.platform_instance_id));
        entries.insert(entries.end(), instance.begin(), instance.end());
    }
    return der::encode(tag::sequence, entries);
}

std::string pck_ca_kind(const crypto::Certificate& pck_certificate) {
    // Name attribute values are stored as plain text inside the DER, so a byte search finds the
    // words without decoding the name.
    auto issuer = pck_certificate.issuer_der();
    auto contains = [&issuer](std::string_view word) {
        return std::search(issuer.begin(), issuer.end(), word.begin(), word.end()) != issuer.end();
    };
    if (contains("Processor")) return "processor";
    if (contains("Platform")) return "platform";
    return "processor";
}

}  // namespace dstack::tee
