// TlsStream: mbedTLS driven over any Stream. mbedTLS reads and writes in-memory buffers
// through its BIO callbacks; whenever it wants more input the coroutine awaits the transport,
// and whatever it produced is written out before waiting, so no call ever blocks.
#include <atomic>
#include <cstring>

#include <mbedtls/ssl.h>

#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "dstack/base/log.hpp"
#include "tls-context.hpp"

namespace dstack::net::tls {

namespace {

class MbedtlsCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "mbedtls"; }
    std::string message(int code) const override { return mbedtls_error_text(code); }
};

const std::error_category& mbedtls_category() {
    static const MbedtlsCategory category;
    return category;
}

std::string alert_name(int alert) {
    switch (alert) {
        case MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE: return "handshake_failure";
        case MBEDTLS_SSL_ALERT_MSG_BAD_CERT: return "bad_certificate";
        case MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_CERT: return "unsupported_certificate";
        case MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED: return "certificate_revoked";
        case MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED: return "certificate_expired";
        case MBEDTLS_SSL_ALERT_MSG_CERT_UNKNOWN: return "certificate_unknown";
        case MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA: return "unknown_ca";
        case MBEDTLS_SSL_ALERT_MSG_ACCESS_DENIED: return "access_denied";
        case MBEDTLS_SSL_ALERT_MSG_DECODE_ERROR: return "decode_error";
        case MBEDTLS_SSL_ALERT_MSG_DECRYPT_ERROR: return "decrypt_error";
        case MBEDTLS_SSL_ALERT_MSG_PROTOCOL_VERSION: return "protocol_version";
        case MBEDTLS_SSL_ALERT_MSG_INSUFFICIENT_SECURITY: return "insufficient_security";
        case MBEDTLS_SSL_ALERT_MSG_INTERNAL_ERROR: return "internal_error";
        case MBEDTLS_SSL_ALERT_MSG_UNRECOGNIZED_NAME: return "unrecognized_name";
        case MBEDTLS_SSL_ALERT_MSG_NO_APPLICATION_PROTOCOL: return "no_application_protocol";
        case MBEDTLS_SSL_ALERT_MSG_CERT_REQUIRED: return "certificate_required";
        case MBEDTLS_SSL_ALERT_MSG_MISSING_EXTENSION: return "missing_extension";
        case MBEDTLS_SSL_ALERT_MSG_ILLEGAL_PARAMETER: return "illegal_parameter";
        default: return fmt::format("alert {}", alert);
    }
}

// Closes the transport when a handshake runs too long. The timer and its handler live on the
// handshake coroutine's own executor (its strand), so the handler never runs alongside the
// handshake's I/O; the state is shared because the handler may run after the handshake frame
// is gone, and `active` (cleared before the frame ends, on the same strand) says whether the
// transport may still be touched. Atomics keep it sound on executors that are not strands.
struct HandshakeWatch {
    Stream* transport = nullptr;
    std::atomic<bool> active{true};
    std::atomic<bool> fired{false};
};

// Ends the watch however the handshake frame ends (return, exception, destruction).
struct HandshakeWatchStopper {
    std::shared_ptr<HandshakeWatch> watch;
    asio::steady_timer& timer;
    ~HandshakeWatchStopper() {
        watch->active = false;
        timer.cancel();
    }
};

class TlsConnection final : public TlsStream {
public:
    TlsConnection(StreamPtr transport, std::shared_ptr<ServerContext> server, std::shared_ptr<ClientContext> client)
        : transport_(std::move(transport)),
          server_(std::move(server)),
          client_(std::move(client)),
          flush_done_(transport_->get_executor(), std::chrono::steady_clock::time_point::max()) {
        mbedtls_ssl_init(&ssl_);
    }
    ~TlsConnection() override { mbedtls_ssl_free(&ssl_); }

    const ContextCore& core() const { return server_ ? server_->core : client_->core; }

    Result<void> setup() {
        int ret = mbedtls_ssl_setup(&ssl_, &core().config);
        if (ret != 0) return make_error("TLS setup: {}", mbedtls_error_text(ret));
        mbedtls_ssl_set_user_data_p(&ssl_, this);
        mbedtls_ssl_set_bio(&ssl_, this, &TlsConnection::bio_send, &TlsConnection::bio_recv, nullptr);
        if (client_) {
            // An empty name means "verify the chain only" and must be said explicitly to mbedTLS.
            ret = mbedtls_ssl_set_hostname(&ssl_, client_->server_name.empty() ? nullptr : client_->server_name.c_str());
            if (ret != 0) return make_error("TLS server name '{}': {}", client_->server_name, mbedtls_error_text(ret));
        }
        return {};
    }

    asio::awaitable<Result<void>> handshake() {
        std::string peer = transport_->peer_description();
        auto watch = std::make_shared<HandshakeWatch>();
        watch->transport = transport_.get();
        auto timeout = core().handshake_timeout;
        asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
        timer.async_wait([watch](std::error_code ec) {
            if (ec || !watch->active) return;
            watch->fired = true;
            watch->transport->close();
        });
        int ret = 0;
        std::error_code io_error;
        {
            HandshakeWatchStopper stopper{watch, timer};
            ret = co_await drive([this] { return mbedtls_ssl_handshake(&ssl_); }, io_error);
        }

        auto fail = [&](std::string reason) -> Result<void> {
            transport_->close();
            return make_error("TLS handshake with {}: {}", peer, reason);
        };
        if (watch->fired) co_return fail(fmt::format("timed out after {} ms", timeout.count()));
        if (!sni_failure_.empty()) co_return fail(sni_failure_);
        if (io_error) co_return fail(io_error.message());
        if (ret != 0) {
            if (server_ && ret == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE &&
                mbedtls_ssl_get_version_number(&ssl_) == MBEDTLS_SSL_VERSION_TLS1_2) {
                // mbedTLS's TLS 1.2 server hangs up without a word here; tell the client why.
                mbedtls_ssl_send_alert_message(&ssl_, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
                                               MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE);
                std::error_code ignored;
                co_await flush(ignored);
            }
            co_return fail(describe_failure(ret));
        }

        fill_session();
        if (auto checked = check_peer(); !checked) {
            // Tell the peer why before hanging up; TLS 1.3 clients learn of it only now.
            mbedtls_ssl_send_alert_message(&ssl_, MBEDTLS_SSL_ALERT_LEVEL_FATAL, checked_alert_);
            std::error_code ignored;
            co_await flush(ignored);
            co_return fail(checked.error().message);
        }
        sni_identity_.reset();
        co_return Result<void>();
    }

    asio::awaitable<std::size_t> read_some(std::span<std::uint8_t> buffer, std::error_code& ec) override {
        ec.clear();
        if (buffer.empty()) co_return 0;
        for (;;) {
            if (read_closed_) {
                ec = asio::error::eof;
                co_return 0;
            }
            std::error_code io_error;
            int ret = co_await drive([&] { return mbedtls_ssl_read(&ssl_, buffer.data(), buffer.size()); }, io_error);
            if (io_error) {
                ec = io_error;
                co_return 0;
            }
            if (ret > 0) co_return static_cast<std::size_t>(ret);
            // TLS 1.3 servers send tickets after the handshake; we never resume, so skip them.
            if (ret == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) continue;
            // A peer that closes without close_notify is treated as ending the stream: the
            // protocols above us (HTTP with lengths or chunks) detect truncation themselves.
            if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || ret == MBEDTLS_ERR_SSL_CONN_EOF) {
                read_closed_ = true;
                continue;
            }
            ec = std::error_code(ret, mbedtls_category());
            co_return 0;
        }
    }

    asio::awaitable<void> write_all(ByteView data, std::error_code& ec) override {
        ec.clear();
        std::size_t written = 0;
        while (written < data.size()) {
            int ret = co_await drive(
                [&] { return mbedtls_ssl_write(&ssl_, data.data() + written, data.size() - written); }, ec);
            if (ec) co_return;
            if (ret < 0) {
                ec = std::error_code(ret, mbedtls_category());
                co_return;
            }
            written += static_cast<std::size_t>(ret);
        }
    }

    asio::awaitable<void> shutdown_send(std::error_code& ec) override {
        ec.clear();
        if (sent_close_notify_) co_return;
        sent_close_notify_ = true;
        int ret = co_await drive([this] { return mbedtls_ssl_close_notify(&ssl_); }, ec);
        if (ec) co_return;
        if (ret != 0) {
            ec = std::error_code(ret, mbedtls_category());
            co_return;
        }
        // Peers that wait for the connection to end rather than for close_notify see it too.
        co_await transport_->shutdown_send(ec);
    }

    void close() override { transport_->close(); }
    asio::any_io_executor get_executor() override { return transport_->get_executor(); }
    std::string peer_description() const override { return transport_->peer_description(); }
    std::string client_address() const override { return transport_->client_address(); }
    const SessionInfo& session() const override { return session_; }

    // Called by mbedTLS (through on_server_name) while parsing the ClientHello.
    int select_certificate(std::string_view name) {
        session_.server_name = std::string(name);
        auto identity = server_->identity_for(name);
        if (!identity) {
            sni_failure_ = identity.error().message;
            return -1;
        }
        if (!*identity) return 0;
        sni_identity_ = std::move(identity).value();  // mbedTLS points into it until the handshake ends
        return mbedtls_ssl_set_hs_own_cert(&ssl_, sni_identity_->certificates->get(), sni_identity_->key->get());
    }

private:
    static int bio_send(void* self, const unsigned char* data, std::size_t length) {
        auto* connection = static_cast<TlsConnection*>(self);
        connection->out_.insert(connection->out_.end(), data, data + length);
        return static_cast<int>(length);
    }

    static int bio_recv(void* self, unsigned char* data, std::size_t length) {
        auto* connection = static_cast<TlsConnection*>(self);
        std::size_t available = connection->in_.size() - connection->in_pos_;
        if (available == 0) return connection->transport_eof_ ? 0 : MBEDTLS_ERR_SSL_WANT_READ;
        std::size_t n = std::min(length, available);
        std::memcpy(data, connection->in_.data() + connection->in_pos_, n);
        connection->in_pos_ += n;
        if (connection->in_pos_ == connection->in_.size()) {
            connection->in_.clear();
            connection->in_pos_ = 0;
        }
        return static_cast<int>(n);
    }

    // Runs one mbedTLS operation until it stops asking for I/O. Transport failures come back
    // through io_error; mbedTLS's own result is returned.
    template <typename Step>
    asio::awaitable<int> drive(Step step, std::error_code& io_error) {
        for (;;) {
            int ret = step();
            if (!out_.empty()) {
                co_await flush(io_error);
                if (io_error) co_return ret;
            }
            if (ret == MBEDTLS_ERR_SSL_WANT_WRITE) continue;  // output was just flushed
            if (ret != MBEDTLS_ERR_SSL_WANT_READ) co_return ret;
            co_await fill(io_error);
            if (io_error) co_return ret;
        }
    }

    asio::awaitable<void> fill(std::error_code& io_error) {
        io_error.clear();
        constexpr std::size_t chunk = 17 * 1024;  // one full record with its overhead
        std::size_t old_size = in_.size();
        in_.resize(old_size + chunk);
        std::size_t n = co_await transport_->read_some(std::span(in_.data() + old_size, chunk), io_error);
        in_.resize(old_size + n);
        if (io_error == asio::error::eof) {
            // mbedTLS sees the end as a zero-length read and reports it in its own terms.
            transport_eof_ = true;
            io_error.clear();
        }
    }

    // Writes out everything mbedTLS produced. A reader and a writer may both have output;
    // only one of them talks to the transport at a time, the other waits for it to finish.
    asio::awaitable<void> flush(std::error_code& io_error) {
        io_error.clear();
        while (flushing_) {
            std::error_code ignored;
            co_await flush_done_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
        }
        if (write_error_) {
            io_error = write_error_;
            co_return;
        }
        flushing_ = true;
        Bytes pending;
        while (!out_.empty()) {
            pending.clear();
            pending.swap(out_);
            co_await transport_->write_all(pending, io_error);
            if (io_error) break;
        }
        flushing_ = false;
        write_error_ = io_error;
        flush_done_.cancel();
    }

    std::string describe_failure(int ret) {
        std::string text = mbedtls_error_text(ret);
        if (ret == MBEDTLS_ERR_SSL_CONN_EOF) return "connection closed by the peer";
        if (ret == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE) {
            // mbedTLS keeps the alert it just read in in_msg but has no accessor for it.
            const unsigned char* message = ssl_.MBEDTLS_PRIVATE(in_msg);
            if (message != nullptr) return fmt::format("{} ({})", text, alert_name(message[1]));
            return text;
        }
        if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED || ret == MBEDTLS_ERR_SSL_BAD_CERTIFICATE) {
            auto flags = mbedtls_ssl_get_verify_result(&ssl_);
            if (flags != 0 && flags != std::uint32_t(-1)) return fmt::format("{}: {}", text, crypto::x509_verify_flags_text(flags));
        }
        if (ret == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE) return text + " (a client certificate is required)";
        return text;
    }

    void fill_session() {
        session_.version = mbedtls_ssl_get_version_number(&ssl_) == MBEDTLS_SSL_VERSION_TLS1_3 ? Version::tls1_3
                                                                                                : Version::tls1_2;
        if (const char* suite = mbedtls_ssl_get_ciphersuite(&ssl_)) session_.cipher_suite = suite;
        if (const char* alpn = mbedtls_ssl_get_alpn_protocol(&ssl_)) session_.alpn = alpn;
        if (client_) session_.server_name = client_->server_name;
        session_.peer_chain_der = crypto::certificate_list_der(mbedtls_ssl_get_peer_cert(&ssl_));
    }

    // Our policy on top of mbedTLS's: optional modes and hook-only trust leave the verdict to us.
    Result<void> check_peer() {
        const auto& c = core();
        bool verifying = server_ ? server_->client_auth != ClientAuth::none : client_->verify_server;
        bool chain_required = server_ ? server_->client_auth == ClientAuth::required : client_->verify_server;
        const char* whose = server_ ? "client" : "server";
        checked_alert_ = MBEDTLS_SSL_ALERT_MSG_BAD_CERT;
        if (verifying) {
            if (session_.peer_chain_der.empty()) {
                if (chain_required) {
                    checked_alert_ = MBEDTLS_SSL_ALERT_MSG_CERT_REQUIRED;
                    return make_error("the {} sent no certificate", whose);
                }
                return {};  // optional client authentication, and the client chose none
            }
            std::uint32_t flags = mbedtls_ssl_get_verify_result(&ssl_);
            std::uint32_t tolerated = c.hook_only ? MBEDTLS_X509_BADCERT_NOT_TRUSTED : 0;
            if (client_ && !client_->verify_hostname) tolerated |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
            if (flags == std::uint32_t(-1)) return make_error("{} certificate was not verified", whose);
            if (flags & ~tolerated)
                return make_error("{} certificate rejected: {}", whose, crypto::x509_verify_flags_text(flags & ~tolerated));
        }
        if (c.verify_hook && !session_.peer_chain_der.empty()) {
            Result<void> verdict = make_error("verify hook threw");
            try {
                verdict = c.verify_hook(session_.peer_chain_der);
            } catch (const std::exception& e) {
                verdict = make_error("verify hook failed: {}", e.what());
            }
            if (!verdict) {
                checked_alert_ = MBEDTLS_SSL_ALERT_MSG_ACCESS_DENIED;
                return std::move(verdict).take_error().context(fmt::format("{} certificate rejected", whose));
            }
        }
        return {};
    }

    StreamPtr transport_;
    std::shared_ptr<ServerContext> server_;
    std::shared_ptr<ClientContext> client_;
    mbedtls_ssl_context ssl_;
    Bytes in_;                 // received from the transport, not yet taken by mbedTLS
    std::size_t in_pos_ = 0;
    bool transport_eof_ = false;
    Bytes out_;                // produced by mbedTLS, not yet written to the transport
    bool flushing_ = false;
    std::error_code write_error_;
    asio::steady_timer flush_done_;  // never expires: cancel() wakes those waiting for a flush
    bool read_closed_ = false;
    bool sent_close_notify_ = false;
    SessionInfo session_;
    std::shared_ptr<Identity> sni_identity_;
    std::string sni_failure_;
    unsigned char checked_alert_ = MBEDTLS_SSL_ALERT_MSG_BAD_CERT;
};

asio::awaitable<Result<std::unique_ptr<TlsStream>>> start(StreamPtr transport, std::shared_ptr<ServerContext> server,
                                                          std::shared_ptr<ClientContext> client) {
    if (!transport) co_return make_error("TLS: no transport");
    auto connection = std::make_unique<TlsConnection>(std::move(transport), std::move(server), std::move(client));
    if (auto ready = connection->setup(); !ready) {
        connection->close();
        co_return std::move(ready).take_error();
    }
    auto done = co_await connection->handshake();
    if (!done) co_return std::move(done).take_error();
    co_return std::unique_ptr<TlsStream>(std::move(connection));
}

}  // namespace

int on_server_name(void*, mbedtls_ssl_context* ssl, const unsigned char* name, std::size_t length) {
    auto* connection = static_cast<TlsConnection*>(mbedtls_ssl_get_user_data_p(ssl));
    return connection->select_certificate(std::string_view(reinterpret_cast<const char*>(name), length));
}

asio::awaitable<Result<std::unique_ptr<TlsStream>>> TlsStream::accept(StreamPtr transport,
                                                                     std::shared_ptr<ServerContext> context) {
    if (!context) co_return make_error("TLS accept: no server context");
    co_return co_await start(std::move(transport), std::move(context), nullptr);
}

asio::awaitable<Result<std::unique_ptr<TlsStream>>> TlsStream::connect(StreamPtr transport,
                                                                      std::shared_ptr<ClientContext> context) {
    if (!context) co_return make_error("TLS connect: no client context");
    co_return co_await start(std::move(transport), nullptr, std::move(context));
}

}  // namespace dstack::net::tls
