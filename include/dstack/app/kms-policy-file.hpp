// A policy file that follows its changes: every look-up stats the file (one system call) and
// reloads it when its identity (device, inode, size, modification and change times) differs from
// the loaded one. A file replaced by an unreadable or invalid one leaves the loaded policy in
// force, and the reason is logged once per change, so a bad edit never opens or closes the KMS.
// Thread-safe.
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "dstack/app/kms-policy.hpp"
#include "dstack/base/result.hpp"

namespace dstack::app {

class KmsPolicyFile {
public:
    // Loads the file now: a missing, unreadable or invalid file is an error naming the path.
    static Result<std::unique_ptr<KmsPolicyFile>> open(std::filesystem::path path);

    // The policy in force, reloaded first when the file changed.
    std::shared_ptr<const KmsPolicy> current();
    const std::filesystem::path& path() const { return path_; }

    // What the file looked like when last read; equal identities are assumed to hold equal bytes.
    struct Identity {
        bool exists = false;
        unsigned long long device = 0, inode = 0, size = 0;
        long long mtime_ns = 0, ctime_ns = 0;
        bool operator==(const Identity&) const = default;
    };

private:
    explicit KmsPolicyFile(std::filesystem::path path) : path_(std::move(path)) {}

    std::filesystem::path path_;
    std::mutex mutex_;
    std::shared_ptr<const KmsPolicy> policy_;
    Identity loaded_;                   // the identity policy_ was read from
    std::optional<Identity> rejected_;  // the last identity that failed to load (logged once)
};

// Reads and parses a policy file; errors start with "policy <path>: ".
Result<KmsPolicy> load_kms_policy(const std::filesystem::path& path);

}  // namespace dstack::app
