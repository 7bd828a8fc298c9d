// TOML configuration loading (toml++), compatible with upstream dstack's config files.
// Unknown keys are reported as warnings so typos do not silently fall back to defaults.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dstack/base/result.hpp"

namespace toml { inline namespace v3 { class table; } }

namespace dstack {

class Config {
public:
    // Parses TOML text; `origin` names the source in error messages (a path or "<string>").
    static Result<Config> parse(std::string_view text, std::string_view origin = "<string>");
    static Result<Config> load(const std::filesystem::path& path);

    Config(Config&&) noexcept;
    Config& operator=(Config&&) noexcept;
    ~Config();

    // Typed look-ups by dotted path ("core.rpc.port"). Missing key: nullopt.
    // Present with the wrong type: an error naming the key, expected and actual types.
    Result<std::optional<std::string>> get_string(std::string_view dotted) const;
    Result<std::optional<std::int64_t>> get_int(std::string_view dotted) const;
    Result<std::optional<bool>> get_bool(std::string_view dotted) const;
    Result<std::optional<std::vector<std::string>>> get_string_array(std::string_view dotted) const;
    // The value as command-line words: a string, integer or boolean is one word ("8080", "true"),
    // an array of those one word per item. Tables, floats and dates are errors naming the key.
    Result<std::optional<std::vector<std::string>>> get_words(std::string_view dotted) const;

    // Dotted paths of every leaf key that is not in `known` (a trailing ".*" in a known entry
    // accepts everything below that table), and logs a warning for each one.
    std::vector<std::string> warn_unknown_keys(const std::vector<std::string>& known) const;

    const std::string& origin() const { return origin_; }

private:
    Config(std::unique_ptr<toml::table> table, std::string origin);
    std::unique_ptr<toml::table> table_;
    std::string origin_;
};

}  // namespace dstack
