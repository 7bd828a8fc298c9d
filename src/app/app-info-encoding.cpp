#include "dstack/app/app-info-encoding.hpp"

#include <fmt/format.h>

#include "dstack/base/msgpack.hpp"

namespace dstack::app {

namespace {

void write_be(Bytes& out, std::uint64_t value, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
}

void write_array_header(Bytes& out, std::size_t count) {
    if (count < 16) {
        out.push_back(static_cast<std::uint8_t>(0x90 | count));
    } else if (count <= 0xffff) {
        out.push_back(0xdc);
        write_be(out, count, 2);
    } else {
        out.push_back(0xdd);
        write_be(out, count, 4);
    }
}

void write_bin(Bytes& out, ByteView bytes) {
    if (bytes.size() <= 0xff) {
        out.push_back(0xc4);
        write_be(out, bytes.size(), 1);
    } else if (bytes.size() <= 0xffff) {
        out.push_back(0xc5);
        write_be(out, bytes.size(), 2);
    } else {
        out.push_back(0xc6);
        write_be(out, bytes.size(), 4);
    }
    out.insert(out.end(), bytes.begin(), bytes.end());
}

}  // namespace

Bytes encode_app_info_msgpack(const AppInfo& info) {
    Bytes out;
    write_array_header(out, 9);
    for (const Bytes* field : {&info.app_id, &info.compose_hash, &info.instance_id, &info.device_id, &info.mr_system,
                               &info.mr_aggregated, &info.os_image_hash, &info.key_provider_info}) {
        write_bin(out, *field);
    }
    write_array_header(out, info.init_script_hashes.size());
    for (const auto& hash : info.init_script_hashes) write_bin(out, hash);
    return out;
}

Result<AppInfo> decode_app_info_msgpack(ByteView bytes) {
    constexpr std::size_t max_field = 64;
    msgpack::Reader reader(bytes);
    DSTACK_TRY(std::size_t count, reader.array("app info"));
    if (count != 9) return make_error("app info: expected an array of 9 fields, got {}", count);
    AppInfo info;
    static constexpr std::string_view names[] = {"app_id", "compose_hash", "instance_id", "device_id", "mr_system",
                                                 "mr_aggregated", "os_image_hash", "key_provider_info"};
    Bytes* fields[] = {&info.app_id, &info.compose_hash, &info.instance_id, &info.device_id, &info.mr_system,
                       &info.mr_aggregated, &info.os_image_hash, &info.key_provider_info};
    for (std::size_t i = 0; i < 8; ++i) {
        // key_provider_info is JSON ({"name":"kms","id":"<hex>"}); the others are digests and ids.
        std::size_t limit = i == 7 ? 4096 : max_field;
        DSTACK_TRY(*fields[i], reader.byte_string(fmt::format("app info.{}", names[i]), limit));
    }
    DSTACK_TRY(std::size_t scripts, reader.array("app info.init_script_hashes"));
    if (scripts > 64) return make_error("app info.init_script_hashes: {} entries, at most 64", scripts);
    for (std::size_t i = 0; i < scripts; ++i) {
        DSTACK_TRY(auto hash, reader.byte_string(fmt::format("app info.init_script_hashes[{}]", i), max_field));
        info.init_script_hashes.push_back(std::move(hash));
    }
    if (reader.remaining() != 0) return make_error("app info: {} bytes after the value", reader.remaining());
    return info;
}

}  // namespace dstack::app
