// The Onboard service (spec/kms.md §2.9): served over plain HTTP while a new KMS has no keys, so an
// operator can bootstrap it or onboard it from an existing KMS; Finish ends it and the KMS goes on
// to serve its keys. Like upstream's it has no authentication (issues #610/#611): bind it to an
// address only the operator reaches.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <atomic>
#include <optional>

#include "dstack/net/http-server.hpp"
#include "onboarding.hpp"

namespace dstack::applets::kms {

struct OnboardState {
    KeySource source;
    std::atomic<bool> busy{false};         // one Bootstrap or Onboard at a time
    std::mutex keys_mutex;
    std::optional<app::KmsKeys> keys;      // stored once obtained
    std::function<void()> finish;          // stops the onboard server
};

net::http::Handler onboard_service(std::shared_ptr<OnboardState> state);

}  // namespace dstack::applets::kms
