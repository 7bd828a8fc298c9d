// `dstack gateway certbot`: one-shot ACME issuance (spec/gateway.md §9.8's standalone certbot, reduced
// to what an operator scripts: issue into a directory, reusing one account file).
#pragma once

namespace dstack::applets::gateway {

// argv[0] is "certbot".
int gateway_certbot_main(int argc, char** argv);

}  // namespace dstack::applets::gateway
