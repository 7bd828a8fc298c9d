// Decoders for the guest agent's request messages; limits are checked here so that handlers only
// ever see requests of a sane size.
#include "dstack/app/agent-requests.hpp"

namespace dstack::app {

namespace {

using net::prpc::Message;

Result<std::string> bounded_string(const Message& message, std::string_view name, std::size_t limit) {
    DSTACK_TRY(auto value, message.string(name));
    if (value.size() > limit) return make_error("{}: longer than {} bytes", name, limit);
    return value;
}

Result<Bytes> bounded_bytes(const Message& message, std::string_view name, std::size_t limit) {
    DSTACK_TRY(auto value, message.bytes(name));
    if (value.size() > limit) return make_error("{}: longer than {} bytes", name, limit);
    return value;
}

Result<std::vector<std::string>> alt_names(const Message& message) {
    DSTACK_TRY(auto names, message.string_list("alt_names"));
    if (names.size() > max_alt_names) return make_error("alt_names: more than {} names", max_alt_names);
    for (const auto& name : names) {
        if (name.size() > max_name_bytes) return make_error("alt_names: a name longer than {} bytes", max_name_bytes);
    }
    return names;
}

}  // namespace

Result<GetTlsKeyArgs> decode_get_tls_key(const Message& message) {
    DSTACK_CHECK(message.only_fields({"subject", "alt_names", "usage_ra_tls", "usage_server_auth",
                                         "usage_client_auth", "not_before", "not_after", "with_app_info"}));
    GetTlsKeyArgs args;
    DSTACK_TRY(args.subject, bounded_string(message, "subject", max_name_bytes));
    DSTACK_TRY(args.alt_names, alt_names(message));
    DSTACK_TRY(args.usage_ra_tls, message.boolean("usage_ra_tls"));
    DSTACK_TRY(args.usage_server_auth, message.boolean("usage_server_auth"));
    DSTACK_TRY(args.usage_client_auth, message.boolean("usage_client_auth"));
    DSTACK_TRY(args.not_before, message.optional_u64("not_before"));
    DSTACK_TRY(args.not_after, message.optional_u64("not_after"));
    DSTACK_TRY(args.with_app_info, message.boolean("with_app_info"));
    for (auto [name, value] : {std::pair{"not_before", args.not_before}, {"not_after", args.not_after}}) {
        if (value && *value > max_certificate_time) return make_error("{}: {} is after the year 9999", name, *value);
    }
    if (args.not_before && args.not_after && *args.not_before >= *args.not_after) {
        return make_error("not_before must be earlier than not_after");
    }
    return args;
}

Result<GetKeyArgs> decode_get_key(const Message& message) {
    DSTACK_CHECK(message.only_fields({"path", "purpose", "algorithm"}));
    GetKeyArgs args;
    DSTACK_TRY(args.path, bounded_string(message, "path", max_key_path_bytes));
    DSTACK_TRY(args.purpose, bounded_string(message, "purpose", max_key_path_bytes));
    DSTACK_TRY(args.algorithm, bounded_string(message, "algorithm", max_name_bytes));
    return args;
}

Result<RawQuoteArgs> decode_raw_quote(const Message& message) {
    DSTACK_CHECK(message.only_fields({"report_data"}));
    RawQuoteArgs args;
    DSTACK_TRY(args.report_data, message.bytes("report_data"));
    // Upstream's exact text (GetQuote and Attest pad shorter report data with zeros).
    if (args.report_data.size() > 64) return make_error("Report data is too long");
    return args;
}

Result<SignArgs> decode_sign(const Message& message) {
    DSTACK_CHECK(message.only_fields({"algorithm", "data"}));
    SignArgs args;
    DSTACK_TRY(args.algorithm, bounded_string(message, "algorithm", max_name_bytes));
    DSTACK_TRY(args.data, bounded_bytes(message, "data", max_sign_data_bytes));
    return args;
}

Result<VerifyArgs> decode_verify(const Message& message) {
    DSTACK_CHECK(message.only_fields({"algorithm", "data", "signature", "public_key"}));
    VerifyArgs args;
    DSTACK_TRY(args.algorithm, bounded_string(message, "algorithm", max_name_bytes));
    DSTACK_TRY(args.data, bounded_bytes(message, "data", max_sign_data_bytes));
    DSTACK_TRY(args.signature, bounded_bytes(message, "signature", 1024));
    DSTACK_TRY(args.public_key, bounded_bytes(message, "public_key", 1024));
    return args;
}

Result<EmitEventArgs> decode_emit_event(const Message& message) {
    DSTACK_CHECK(message.only_fields({"event", "payload"}));
    EmitEventArgs args;
    DSTACK_TRY(args.event, bounded_string(message, "event", max_event_name_bytes));
    DSTACK_TRY(args.payload, bounded_bytes(message, "payload", max_event_payload_bytes));
    return args;
}

Result<DeriveKeyArgs> decode_derive_key(const Message& message) {
    DSTACK_CHECK(message.only_fields({"path", "subject", "alt_names", "usage_ra_tls", "usage_server_auth",
                                         "usage_client_auth", "random_seed"}));
    DeriveKeyArgs args;
    DSTACK_TRY(args.path, bounded_string(message, "path", max_key_path_bytes));
    DSTACK_TRY(args.subject, bounded_string(message, "subject", max_name_bytes));
    DSTACK_TRY(args.alt_names, alt_names(message));
    DSTACK_TRY(args.usage_ra_tls, message.boolean("usage_ra_tls"));
    DSTACK_TRY(args.usage_server_auth, message.boolean("usage_server_auth"));
    DSTACK_TRY(args.usage_client_auth, message.boolean("usage_client_auth"));
    DSTACK_TRY(args.random_seed, message.boolean("random_seed"));
    return args;
}

Result<TdxQuoteArgs> decode_tdx_quote(const Message& message) {
    DSTACK_CHECK(message.only_fields({"report_data", "hash_algorithm", "prefix"}));
    TdxQuoteArgs args;
    // The content is hashed, so any size up to the body limit would do; bound it anyway.
    DSTACK_TRY(args.report_data, bounded_bytes(message, "report_data", max_sign_data_bytes));
    DSTACK_TRY(args.hash_algorithm, bounded_string(message, "hash_algorithm", max_name_bytes));
    DSTACK_TRY(args.prefix, bounded_string(message, "prefix", max_name_bytes));
    return args;
}

Result<AppKeyAttestationArgs> decode_app_key_attestation(const Message& message) {
    DSTACK_CHECK(message.only_fields({"algorithm"}));
    AppKeyAttestationArgs args;
    DSTACK_TRY(args.algorithm, bounded_string(message, "algorithm", max_name_bytes));
    return args;
}

}  // namespace dstack::app
