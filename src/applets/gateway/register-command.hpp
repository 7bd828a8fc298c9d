// `dstack gateway register`: the guest side of RegisterCvm as a command (what a CVM's boot runs):
// the app's KMS-signed client certificate from its guest agent, its WireGuard key, the call, and
// the WireGuard configuration to bring the tunnel up with.
#pragma once

namespace dstack::applets::gateway {

int gateway_register_main(int argc, char** argv);

}  // namespace dstack::applets::gateway
