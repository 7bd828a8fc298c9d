// libFuzzer target: an operator's TOML config (--config FILE) must never crash the parser or the
// look-ups that turn its values into command-line words.
#include <string_view>

#include "dstack/base/config.hpp"
#include "dstack/base/log.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const bool quiet = [] {  // unknown-key warnings would flood the run's output
        dstack::log::Settings settings;
        settings.level = dstack::log::Level::off;
        dstack::log::configure(settings);
        return true;
    }();
    (void)quiet;
    auto config = dstack::Config::parse(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.toml");
    if (!config) return 0;
    for (auto key : {"address", "port", "attestation.urls.pccs", "attestation.root_ca.tdx", "a.b.c"}) {
        (void)config->get_words(key);
        (void)config->get_string(key);
        (void)config->get_int(key);
        (void)config->get_bool(key);
    }
    (void)config->warn_unknown_keys({"address", "port", "attestation.*"});
    return 0;
}
