#include "dstack/app/app-info-encoding.hpp"

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

}  // namespace dstack::app
