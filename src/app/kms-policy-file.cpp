// The policy file and its reloading.
#include "dstack/app/kms-policy-file.hpp"

#include <sys/stat.h>

#include "dstack/base/file.hpp"
#include "dstack/base/log.hpp"

namespace dstack::app {
namespace {

KmsPolicyFile::Identity identity_of(const std::filesystem::path& path) {
    KmsPolicyFile::Identity id;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return id;
    id.exists = true;
    id.device = st.st_dev;
    id.inode = st.st_ino;
    id.size = static_cast<unsigned long long>(st.st_size);
    id.mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    id.ctime_ns = static_cast<long long>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec;
    return id;
}

}  // namespace

Result<KmsPolicy> load_kms_policy(const std::filesystem::path& path) {
    auto context = fmt::format("policy {}", path.string());
    auto text = read_text_file(path, max_kms_policy_bytes);
    if (!text) return std::move(text).take_error().context(context);
    auto policy = parse_kms_policy(*text);
    if (!policy) return std::move(policy).take_error().context(context);
    return policy;
}

Result<std::unique_ptr<KmsPolicyFile>> KmsPolicyFile::open(std::filesystem::path path) {
    std::unique_ptr<KmsPolicyFile> file(new KmsPolicyFile(std::move(path)));
    // The identity is taken before reading: a change racing the read is seen by the next look-up.
    file->loaded_ = identity_of(file->path_);
    DSTACK_TRY(auto policy, load_kms_policy(file->path_));
    file->policy_ = std::make_shared<const KmsPolicy>(std::move(policy));
    return file;
}

std::shared_ptr<const KmsPolicy> KmsPolicyFile::current() {
    std::lock_guard lock(mutex_);
    auto now = identity_of(path_);
    if (now == loaded_ || (rejected_ && now == *rejected_)) return policy_;
    auto policy = now.exists ? load_kms_policy(path_)
                             : Result<KmsPolicy>(make_error("policy {}: the file is gone", path_.string()));
    if (!policy) {
        log::error("{}; keeping the policy loaded before", policy.error().message);
        rejected_ = now;
        return policy_;
    }
    policy_ = std::make_shared<const KmsPolicy>(std::move(*policy));
    loaded_ = now;
    rejected_.reset();
    log::info("policy {}: reloaded", path_.string());
    return policy_;
}

}  // namespace dstack::app
