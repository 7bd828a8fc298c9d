// BootInfo: built from an AppInfo and the quote's TCB verdict, and the exact bytes of upstream's
// PolicyBootInfo JSON that an auth webhook receives.
#include <doctest/doctest.h>

#include "dstack/app/boot-info.hpp"

using namespace dstack;

namespace {

Bytes filled(std::size_t size, std::uint8_t first) {
    Bytes out(size);
    for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<std::uint8_t>(first + i);
    return out;
}

}  // namespace

TEST_CASE("kms auth: BootInfo from AppInfo and the TCB verdict, and its exact upstream JSON") {
    app::AppInfo info;
    info.app_id = filled(20, 0x10);
    info.compose_hash = filled(32, 0x20);
    info.instance_id = filled(20, 0x40);
    info.device_id = filled(32, 0x60);
    info.mr_system = filled(32, 0x80);
    info.mr_aggregated = filled(32, 0xa0);
    info.os_image_hash = filled(32, 0xc0);
    std::string provider = R"({"name":"kms","id":"ab"})";
    info.key_provider_info = Bytes(provider.begin(), provider.end());
    tee::TcbVerdict verdict;
    verdict.status = tee::TcbStatus::sw_hardening_needed;
    verdict.advisory_ids = {"INTEL-SA-00837", "INTEL-SA-00615"};

    auto boot = app::make_boot_info(info, verdict);
    CHECK(boot.tee_variant == "dstack-tdx");
    CHECK(boot.app_id == info.app_id);
    CHECK(boot.tcb_status == "SWHardeningNeeded");
    CHECK(boot.advisory_ids == verdict.advisory_ids);

    // Field order, camelCase names and bare lowercase hex are upstream's (serde_human_bytes).
    CHECK(app::boot_info_json(boot) ==
          R"({"teeVariant":"dstack-tdx",)"
          R"("mrAggregated":"a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf",)"
          R"("osImageHash":"c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf",)"
          R"("mrSystem":"808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",)"
          R"("appId":"101112131415161718191a1b1c1d1e1f20212223",)"
          R"("composeHash":"202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f",)"
          R"("instanceId":"404142434445464748494a4b4c4d4e4f50515253",)"
          R"("deviceId":"606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f",)"
          R"("keyProviderInfo":"7b226e616d65223a226b6d73222c226964223a226162227d",)"
          R"("tcbStatus":"SWHardeningNeeded","advisoryIds":["INTEL-SA-00837","INTEL-SA-00615"]})");

    // No instance id (no_instance_id apps), no advisories, another TEE.
    app::AppInfo bare;
    tee::TcbVerdict up_to_date;
    auto minimal = app::make_boot_info(bare, up_to_date, "dstack-gcp-tdx");
    CHECK(app::boot_info_json(minimal) ==
          R"({"teeVariant":"dstack-gcp-tdx","mrAggregated":"","osImageHash":"","mrSystem":"","appId":"",)"
          R"("composeHash":"","instanceId":"","deviceId":"","keyProviderInfo":"","tcbStatus":"UpToDate","advisoryIds":[]})");
}
