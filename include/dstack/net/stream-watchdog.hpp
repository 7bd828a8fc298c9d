// Deadlines for any Stream: a watchdog coroutine that closes the stream when time runs out.
// Closing works for every Stream (TCP, unix, TLS) without relying on per-operation
// cancellation. Used by the HTTP server and client, and by the gateway's proxy.
#pragma once

#include <chrono>
#include <memory>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "dstack/net/stream.hpp"

namespace dstack::net {

// Closes its stream when the deadline passes. Give it the executor (strand) of the coroutine
// that uses the stream, so that the two never run at the same time.
class Watchdog : public std::enable_shared_from_this<Watchdog> {
public:
    explicit Watchdog(asio::any_io_executor executor) : timer_(std::move(executor)) {
        timer_.expires_at(std::chrono::steady_clock::time_point::max());
    }

    void start() { asio::co_spawn(timer_.get_executor(), run(shared_from_this()), asio::detached); }
    void guard(std::weak_ptr<Stream> stream) { stream_ = std::move(stream); }
    void arm(std::chrono::steady_clock::time_point deadline) {
        if (!fired_) timer_.expires_at(deadline);
    }
    void disarm() { arm(std::chrono::steady_clock::time_point::max()); }
    void stop() {
        stopped_ = true;
        timer_.cancel();
    }
    bool fired() const { return fired_; }

private:
    static asio::awaitable<void> run(std::shared_ptr<Watchdog> self) {
        while (!self->stopped_) {
            std::error_code ec;
            co_await self->timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            if (self->stopped_) break;
            // A changed deadline also wakes us (operation_aborted): wait again for the new one.
            if (self->timer_.expiry() <= std::chrono::steady_clock::now()) {
                self->fired_ = true;
                if (auto stream = self->stream_.lock()) stream->close();
                break;
            }
        }
    }

    asio::steady_timer timer_;
    std::weak_ptr<Stream> stream_;
    bool stopped_ = false;
    bool fired_ = false;
};

// Stops the watchdog however the connection coroutine ends.
struct WatchdogStopper {
    std::shared_ptr<Watchdog> watchdog;
    ~WatchdogStopper() { watchdog->stop(); }
};

// Lends a shared stream to an owner that insists on unique ownership (TlsStream::accept), so
// the watchdog can still close the transport while the handshake runs.
class SharedStream : public Stream {
public:
    explicit SharedStream(std::shared_ptr<Stream> inner) : inner_(std::move(inner)) {}
    asio::awaitable<std::size_t> read_some(std::span<std::uint8_t> buffer, std::error_code& ec) override {
        return inner_->read_some(buffer, ec);
    }
    asio::awaitable<void> write_all(ByteView data, std::error_code& ec) override { return inner_->write_all(data, ec); }
    asio::awaitable<void> shutdown_send(std::error_code& ec) override { return inner_->shutdown_send(ec); }
    void close() override { inner_->close(); }
    asio::any_io_executor get_executor() override { return inner_->get_executor(); }
    std::string peer_description() const override { return inner_->peer_description(); }
    std::string client_address() const override { return inner_->client_address(); }

private:
    std::shared_ptr<Stream> inner_;
};

}  // namespace dstack::net
