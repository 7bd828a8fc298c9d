// What a KMS authorizer is asked about a booting CVM: upstream's PolicyBootInfo, the identity
// values of AppInfo plus the verified quote's TCB status and advisories. Its JSON form is what an
// upstream auth webhook (auth-eth, auth-simple) reads, so its bytes are [WIRE].
#pragma once

#include <string>
#include <vector>

#include "dstack/app/identity.hpp"
#include "dstack/base/bytes.hpp"
#include "dstack/tee/tcb-info.hpp"

namespace dstack::app {

struct BootInfo {
    BootInfo() = default;  // not an aggregate: it travels into coroutines (README, g++ 12)

    // dstack-tdx | dstack-gcp-tdx | dstack-nitro-enclave | dstack-amd-sev-snp | dstack-aws-nitro-tpm
    std::string tee_variant = "dstack-tdx";
    Bytes mr_aggregated;
    Bytes os_image_hash;
    Bytes mr_system;
    Bytes app_id;
    Bytes compose_hash;
    Bytes instance_id;
    Bytes device_id;
    Bytes key_provider_info;  // the key-provider event's JSON bytes, as measured
    std::string tcb_status;   // "UpToDate", "OutOfDate", ... (tee::tcb_status_name)
    std::vector<std::string> advisory_ids;
};

// The identity of `info` with the TCB verdict of the quote it was decoded from. The verdict must
// be the verified one (DcapReport::verdict): a policy's TCB rule is only as good as this.
BootInfo make_boot_info(const AppInfo& info, const tee::TcbVerdict& verdict, std::string tee_variant = "dstack-tdx");

// upstream's PolicyBootInfo JSON: camelCase keys in upstream's field order, bytes as lowercase hex
// without 0x, no whitespace:
// {"teeVariant":..,"mrAggregated":..,"osImageHash":..,"mrSystem":..,"appId":..,"composeHash":..,
//  "instanceId":..,"deviceId":..,"keyProviderInfo":..,"tcbStatus":..,"advisoryIds":[..]}
std::string boot_info_json(const BootInfo& info);

}  // namespace dstack::app
