// dstack runtime events (extended into RTMR3): the v1 and v2 preimages and the check that a v2
// event's stated preimage is the canonical one.

#include <fmt/format.h>

#include "dstack/base/hex.hpp"
#include "dstack/base/json-escape.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/tee/eventlog.hpp"

namespace dstack::tee {

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
