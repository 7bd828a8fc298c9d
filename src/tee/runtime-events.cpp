// dstack runtime events (extended into RTMR3): the v1 and v2 preimages, the check that a v2
// event's stated preimage is the canonical one, and the rule for event names.

#include <fmt/format.h>

#include "dstack/base/hex.hpp"
#include "dstack/base/json-escape.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/tee/eventlog.hpp"

namespace dstack::tee {
namespace {

// Names are quoted in errors, so the quoting must not let the name itself break out of them; a
// long one is cut (an event log may hold a megabyte-long name).
constexpr std::size_t max_quoted_name = 80;

std::string quoted_name(std::string_view name) {
    std::string out = "\"";
    for (char c : name.substr(0, max_quoted_name)) {
        auto byte = static_cast<unsigned char>(c);
        if (byte < 0x20 || byte > 0x7e || c == '"' || c == '\\') out += fmt::format("\\x{:02x}", byte);
        else out.push_back(c);
    }
    return out + (name.size() > max_quoted_name ? "\"..." : "\"");
}

}  // namespace

Result<void> check_runtime_event_name(std::string_view name) {
    if (name.empty()) return make_error("runtime event with an empty name: dstack names every runtime event");
    for (std::size_t i = 0; i < name.size(); ++i) {
        auto byte = static_cast<unsigned char>(name[i]);
        if (name[i] == ':')
            return make_error("runtime event {}: the name contains ':' (at offset {}), which makes its digest ambiguous",
                              quoted_name(name), i);
        if (byte < 0x20 || byte > 0x7e)
            return make_error("runtime event {}: the name contains the non-printable byte 0x{:02x} (at offset {})",
                              quoted_name(name), byte, i);
    }
    return {};
}

Result<TdxEvent> make_runtime_event(std::string_view name, ByteView payload, unsigned version) {
    DSTACK_CHECK(check_runtime_event_name(name));
    if (version != 1 && version != 2) return make_error("runtime event {}: version {}; there are 1 and 2", quoted_name(name), version);
    TdxEvent event;
    event.imr = 3;
    event.event_type = runtime_event_type;
    event.event = std::string(name);
    event.event_payload.assign(payload.begin(), payload.end());
    event.version = version;
    if (version == 2) {
        event.preimage = runtime_event_preimage(name, payload, 2);
        event.digest = crypto::sha384(*event.preimage);
    } else {
        event.digest = runtime_event_digest(name, payload, 1);
    }
    return event;
}

Bytes runtime_event_preimage(std::string_view name, ByteView payload, unsigned version) {
    std::string out;
    if (version == 2) {
        // Keys are already in RFC 8785 order ("name" < "payload" < "type").
        out += "{\"name\":";
        append_json_string_literal(out, name);
        out += ",\"payload\":\"";
        out += hex_encode(payload);
        out += fmt::format("\",\"type\":{}}}", runtime_event_type);
        return to_bytes(out);
    }
    for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<char>(runtime_event_type >> shift));
    out.push_back(':');
    out += name;
    out.push_back(':');
    out += as_chars(payload);
    return to_bytes(out);
}

Bytes runtime_event_digest(std::string_view name, ByteView payload, unsigned version) {
    return crypto::sha384(runtime_event_preimage(name, payload, version));
}

Result<void> validate_v2_preimage(const TdxEvent& event) {
    if (event.version != 2) return {};
    if (!event.preimage) return make_error("v2 runtime event '{}' has no preimage", event.event);
    if (crypto::sha384(*event.preimage) != event.digest) {
        return make_error("v2 runtime event '{}': the SHA-384 of its preimage is not its digest", event.event);
    }
    if (*event.preimage != runtime_event_preimage(event.event, event.event_payload, 2)) {
        return make_error("v2 runtime event '{}': the preimage is not the canonical JSON of its name and payload",
                          event.event);
    }
    return {};
}

}  // namespace dstack::tee
