#include "services.hpp"

#include <filesystem>

#include "dstack/app/kms-requests.hpp"
#include "dstack/base/log.hpp"
#include "dstack/base/version.hpp"
#include "support/admin-auth.hpp"

namespace dstack::applets::kms {
namespace {

using net::prpc::Call;
using net::prpc::Reply;
namespace http = net::http;

bool releases_keys(std::string_view method) {
    return method == "GetAppKey" || method == "GetKmsKey" || method == "SignCert";
}

// A plain coroutine (not a capturing lambda: the closure could die before the frame).
asio::awaitable<http::Response> serve_main(std::shared_ptr<const Kms> kms, net::prpc::Service service, http::Request& request,
                                           const http::ConnectionInfo& connection) {
    http::Response response;
    bool get = request.method == "GET" || request.method == "HEAD";
    if (get && request.path == "/health") {
        response = http::Response::text("OK");
    } else if (get && request.path == "/metrics" && kms->settings().metrics_enabled) {
        response = http::Response::text(kms->metrics_text());
        response.headers.set("Content-Type", "text/plain; version=0.0.4");
    } else if (auto method = service.method_name(request.path); method && service.matches(request)) {
        bool counted = releases_keys(*method);
        if (counted) kms->metrics().attestation_requests++;
        response = co_await service.handle(request, connection);
        if (counted && response.status >= 400) {
            kms->metrics().attestation_failures++;
            log::info("{} from {} refused: {}", *method, connection.peer, response.body.substr(0, 512));
        }
    } else {
        response = http::Response::json_error(404, "not found");
    }
    response.headers.set("X-App-Version", std::string(version()));
    co_return response;
}

bool admin_authorized(const Settings& settings, const http::Request& request) {
    if (settings.admin_insecure_no_auth) return true;
    return admin_token_matches(settings.admin_token, request, false);
}

Result<void> clear_cache_entry(const std::filesystem::path& parent, const std::string& key) {
    if (key.empty()) return {};
    std::error_code ec;
    auto target = key == "all" ? parent : parent / key;
    std::filesystem::remove_all(target, ec);
    if (ec) return make_error("{}: {}", target.string(), ec.message());
    return {};
}

asio::awaitable<http::Response> serve_admin(std::shared_ptr<const Kms> kms, net::prpc::Service service, http::Request& request,
                                            const http::ConnectionInfo& connection) {
    if (!admin_authorized(kms->settings(), request)) co_return admin_unauthorized("dstack-kms admin");
    co_return co_await service.handle(request, connection);
}

}  // namespace

http::Handler main_service(std::shared_ptr<const Kms> kms) {
    net::prpc::Service service("/prpc", "KMS.");
    service.add("GetAppKey", [kms](const Call& call) { return kms->get_app_key(call); });
    service.add("GetAppEnvEncryptPubKey", [kms](const Call& call) { return kms->get_app_env_encrypt_pub_key(call); });
    service.add("GetMeta", [kms](const Call& call) { return kms->get_meta(call); }, net::prpc::Input::empty);
    service.add("GetKmsKey", [kms](const Call& call) { return kms->get_kms_key(call); });
    service.add("GetTempCaCert", [kms](const Call& call) { return kms->get_temp_ca_cert(call); }, net::prpc::Input::empty);
    service.add("SignCert", [kms](const Call& call) { return kms->sign_cert(call); });
    return [kms, service](http::Request& request, const http::ConnectionInfo& connection) {
        return serve_main(kms, service, request, connection);
    };
}

http::Handler admin_service(std::shared_ptr<const Kms> kms) {
    net::prpc::Service service("/prpc", "Admin.");
    // The image cache belongs to the OS image check, which this build does not make; the method
    // still clears the directories an upstream KMS would have left ([core.image] cache_dir).
    std::filesystem::path cache_dir = kms->settings().image_cache_dir;
    service.add("ClearImageCache", [cache_dir](const Call& call) -> Result<Reply> {
        DSTACK_TRY(auto args, app::decode_clear_image_cache(call));
        DSTACK_CHECK(clear_cache_entry(cache_dir / "images", args.image_hash));
        DSTACK_CHECK(clear_cache_entry(cache_dir / "measurements", args.config_hash));
        return Reply::null();
    });
    return [kms, service](http::Request& request, const http::ConnectionInfo& connection) {
        return serve_admin(kms, service, request, connection);
    };
}

}  // namespace dstack::applets::kms
