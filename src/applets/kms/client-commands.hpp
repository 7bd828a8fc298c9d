// The KMS's client commands: what a guest (get-app-key) and a deployer (encrypt-env) run against
// a KMS, on the app layer's KMS client.
#pragma once

#include <string_view>

namespace dstack::applets::kms {

int get_app_key_main(std::string_view usage, int argc, char** argv);
int encrypt_env_main(std::string_view usage, int argc, char** argv);
int decrypt_env_main(std::string_view usage, int argc, char** argv);

}  // namespace dstack::applets::kms
