#include "txt-cache.hpp"

namespace dstack::applets::gateway {
namespace {
constexpr auto positive_ttl = std::chrono::seconds(60);
constexpr auto negative_ttl = std::chrono::seconds(10);
constexpr std::size_t max_entries = 4096;
}  // namespace

asio::awaitable<Result<std::vector<std::string>>> TxtCache::lookup(asio::any_io_executor executor, std::string name) {
    auto now = std::chrono::steady_clock::now();
    {
        std::lock_guard lock(mutex_);
        auto it = entries_.find(name);
        if (it != entries_.end() && it->second.expires > now) co_return it->second.answer;
    }
    auto answer = co_await net::dns::lookup_txt(executor, name, options_);
    std::lock_guard lock(mutex_);
    if (entries_.size() >= max_entries) {
        for (auto it = entries_.begin(); it != entries_.end();) it = it->second.expires <= now ? entries_.erase(it) : std::next(it);
        if (entries_.size() >= max_entries) entries_.clear();
    }
    Entry entry{answer, std::chrono::steady_clock::now() + (answer ? positive_ttl : negative_ttl)};
    entries_.insert_or_assign(name, std::move(entry));
    co_return answer;
}

}  // namespace dstack::applets::gateway
