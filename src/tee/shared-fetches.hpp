// Single-flight with a short memory of failures, for coroutines on any number of threads: the
// first caller of a key runs the fetch, callers arriving meanwhile wait for its outcome, and a
// failed outcome is handed to every caller of that key until it expires. Both maps are bounded;
// when one is full a new key is refused rather than fetched. Private to the tee layer.
#pragma once

#include <chrono>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "dstack/base/result.hpp"
#include "dstack/tee/collateral-fetch.hpp"

namespace dstack::tee::detail {

template <typename T>
class SharedFetches {
public:
    using Value = std::shared_ptr<const T>;
    using Clock = std::chrono::steady_clock;

    struct Policy {
        bool (*failed)(const T&);    // whether an outcome is remembered
        T (*from_error)(Error);      // the outcome of a refusal or an exception
    };

    SharedFetches(Policy policy, const CollateralFetcher::Limits& limits, CollateralFetcher::Stats& stats,
                  std::mutex& stats_mutex)
        : policy_(policy), limits_(limits), stats_(stats), stats_mutex_(stats_mutex) {}

    // `fetch` runs only when this caller leads the flight (an unstarted awaitable costs nothing).
    asio::awaitable<Value> share(std::string key, asio::awaitable<T> fetch) {
        std::shared_ptr<Flight> flight;
        Value known;
        bool lead = false;
        {
            std::lock_guard lock(mutex_);
            forget_expired(Clock::now());
            if (auto remembered = remembered_.find(key); remembered != remembered_.end()) {
                known = remembered->second;
                count(&CollateralFetcher::Stats::remembered);
            } else if (auto running = in_flight_.find(key); running != in_flight_.end()) {
                flight = running->second;
                count(&CollateralFetcher::Stats::joined);
            } else if (in_flight_.size() >= limits_.max_in_flight) {
                known = refuse(fmt::format("collateral fetches: {} different fetches are in flight already; try again shortly",
                                           in_flight_.size()));
            } else if (remembered_.size() >= limits_.max_remembered_failures) {
                known = refuse(fmt::format("collateral fetches: {} different fetches failed in the last {} s; not starting "
                                           "another until one of those expires",
                                           remembered_.size(), ttl_seconds()));
            } else {
                flight = std::make_shared<Flight>();
                in_flight_.emplace(key, flight);
                lead = true;
                count(&CollateralFetcher::Stats::fetched);
            }
        }
        if (known) co_return known;
        if (!lead) co_return co_await wait(std::move(flight));

        // If this frame is destroyed before the fetch completes (only when its io_context is torn
        // down), the flight must not stay in the map: the guard removes it.
        Leader leader{this, key, flight};
        Value value;
        try {
            value = std::make_shared<const T>(co_await std::move(fetch));
        } catch (const std::exception& e) {
            value = std::make_shared<const T>(policy_.from_error(make_error("fetching collateral failed: {}", e.what())));
        }
        leader.complete(value);
        co_return value;
    }

private:
    struct Flight {
        bool done = false;
        Value value;
        std::vector<std::function<void(Value)>> waiters;
    };

    struct Leader {
        SharedFetches* owner;
        std::string key;
        std::shared_ptr<Flight> flight;
        bool completed = false;

        void complete(const Value& value) {
            completed = true;
            owner->finish(key, flight, value);
        }
        ~Leader() {
            if (!completed) owner->abandon(key, flight);
        }
    };

    double ttl_seconds() const { return std::chrono::duration<double>(limits_.failure_ttl).count(); }

    void count(std::uint64_t CollateralFetcher::Stats::*field) {
        std::lock_guard lock(stats_mutex_);
        ++(stats_.*field);
    }

    Value refuse(std::string message) {
        count(&CollateralFetcher::Stats::refused);
        return std::make_shared<const T>(policy_.from_error(Error{std::move(message)}));
    }

    // Called with mutex_ held. Every entry lives for the same ttl, so insertion order is expiry order.
    void forget_expired(Clock::time_point now) {
        while (!expiry_.empty() && expiry_.front().at <= now) {
            // A key remembered again later has a newer entry further back; only its own goes.
            auto it = remembered_.find(expiry_.front().key);
            if (it != remembered_.end() && it->second == expiry_.front().value) remembered_.erase(it);
            expiry_.pop_front();
        }
    }

    void finish(const std::string& key, const std::shared_ptr<Flight>& flight, const Value& value) {
        std::vector<std::function<void(Value)>> waiters;
        {
            std::lock_guard lock(mutex_);
            flight->done = true;
            flight->value = value;
            waiters = std::move(flight->waiters);
            if (auto it = in_flight_.find(key); it != in_flight_.end() && it->second == flight) in_flight_.erase(it);
            if (policy_.failed(*value) && limits_.failure_ttl.count() > 0) {
                remembered_[key] = value;
                expiry_.push_back({Clock::now() + limits_.failure_ttl, key, value});
            }
        }
        for (auto& deliver : waiters) deliver(value);
    }

    // The waiters' handlers are dropped, not run: their io_context is going away too.
    void abandon(const std::string& key, const std::shared_ptr<Flight>& flight) {
        std::vector<std::function<void(Value)>> waiters;
        {
            std::lock_guard lock(mutex_);
            flight->done = true;
            flight->value = std::make_shared<const T>(policy_.from_error(Error{"collateral fetch abandoned"}));
            waiters = std::move(flight->waiters);
            if (auto it = in_flight_.find(key); it != in_flight_.end() && it->second == flight) in_flight_.erase(it);
        }
    }

    // Resumes on the caller's own executor once the leader has the outcome; the work guard keeps
    // the caller's io_context running meanwhile, even when the leader runs on another one.
    asio::awaitable<Value> wait(std::shared_ptr<Flight> flight) {
        auto executor = co_await asio::this_coro::executor;
        auto initiate = [this, flight = std::move(flight), executor](auto handler) {
            using Handler = decltype(handler);
            struct Pending {
                Handler handler;
                asio::executor_work_guard<asio::any_io_executor> work;
            };
            auto pending = std::make_shared<Pending>(Pending{std::move(handler), asio::make_work_guard(executor)});
            std::function<void(Value)> deliver = [pending](Value value) {
                auto target = asio::get_associated_executor(pending->handler, pending->work.get_executor());
                asio::post(target, [pending, value = std::move(value)]() mutable {
                    auto work = std::move(pending->work);
                    std::move(pending->handler)(std::move(value));
                });
            };
            std::unique_lock lock(mutex_);
            if (flight->done) {
                Value value = flight->value;
                lock.unlock();
                deliver(std::move(value));
                return;
            }
            flight->waiters.push_back(std::move(deliver));
        };
        co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(Value)>(std::move(initiate),
                                                                                             asio::use_awaitable);
    }

    struct Expiry {
        Clock::time_point at;
        std::string key;
        Value value;
    };

    Policy policy_;
    const CollateralFetcher::Limits& limits_;
    CollateralFetcher::Stats& stats_;
    std::mutex& stats_mutex_;
    std::mutex mutex_;
    std::map<std::string, std::shared_ptr<Flight>> in_flight_;
    std::map<std::string, Value> remembered_;
    std::deque<Expiry> expiry_;
};

}  // namespace dstack::tee::detail
