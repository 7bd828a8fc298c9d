#include <algorithm>

#include "applet-table.hpp"

namespace dstack::applets {

int agent_main(int argc, char** argv);
int gateway_main(int argc, char** argv);
int kms_main(int argc, char** argv);
int verify_main(int argc, char** argv);
int vmm_main(int argc, char** argv);

namespace {

constexpr Applet applets[] = {
    {"agent", "guest agent: the dstack.sock API inside a CVM (quotes, keys, RA-TLS certificates)", agent_main},
    {"gateway", "TLS gateway: ACME or self-signed certificates, routes by SNI to CVMs", gateway_main},
    {"kms", "key management: verifies quotes, derives and releases per-app keys", kms_main},
    {"verify", "verify a quote or attestation: one command, one verdict", verify_main},
    {"vmm", "boot CVMs with QEMU from a docker-compose file on a TDX host", vmm_main},
};

static_assert(std::is_sorted(std::begin(applets), std::end(applets),
                             [](const Applet& a, const Applet& b) { return a.name < b.name; }),
              "keep the applet table sorted by name");

}  // namespace

std::span<const Applet> table() { return applets; }

const Applet* find(std::string_view name) {
    auto it = std::lower_bound(std::begin(applets), std::end(applets), name,
                               [](const Applet& a, std::string_view n) { return a.name < n; });
    return it != std::end(applets) && it->name == name ? it : nullptr;
}

}  // namespace dstack::applets
