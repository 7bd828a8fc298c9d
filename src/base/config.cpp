#include "dstack/base/config.hpp"

// Errors come back as values, not exceptions (our convention for input from outside).
#define TOML_EXCEPTIONS 0
// toml++ 3.3 asserts on input its parser then rejects cleanly anyway (a key starting with a
// character no key may start with: "[}"), and with NDEBUG it turns those asserts into
// __builtin_assume, which makes the same input undefined behaviour. Neither is acceptable for a
// file from outside: its asserts are off here and NDEBUG is never seen by it, so the parser's own
// error paths run. (The fuzz target fuzz-config holds this in place.)
#ifdef NDEBUG
#undef NDEBUG
#endif
#define TOML_ASSERT(expr) static_assert(true)
#include <toml++/toml.h>

#include "dstack/base/file.hpp"
#include "dstack/base/log.hpp"

namespace dstack {
namespace {

constexpr std::size_t max_config_size = 1 << 20;

std::string_view type_name(toml::node_type type) {
    switch (type) {
        case toml::node_type::table: return "table";
        case toml::node_type::array: return "array";
        case toml::node_type::string: return "string";
        case toml::node_type::integer: return "integer";
        case toml::node_type::floating_point: return "float";
        case toml::node_type::boolean: return "boolean";
        case toml::node_type::date: return "date";
        case toml::node_type::time: return "time";
        case toml::node_type::date_time: return "date-time";
        default: return "nothing";
    }
}

bool is_known(const std::string& key, const std::vector<std::string>& known) {
    for (const auto& entry : known) {
        if (entry == key) return true;
        if (entry.ends_with(".*") && key.starts_with(entry.substr(0, entry.size() - 1))) return true;
    }
    return false;
}

void collect_unknown(const toml::table& table, const std::string& prefix, const std::vector<std::string>& known,
                     std::vector<std::string>& out) {
    for (const auto& [key, node] : table) {
        std::string path = prefix.empty() ? std::string(key.str()) : prefix + "." + std::string(key.str());
        if (is_known(path, known)) continue;
        if (const auto* sub = node.as_table()) collect_unknown(*sub, path, known, out);
        else out.push_back(path);
    }
}

template <typename T>
Result<std::optional<T>> get_typed(const toml::table& table, std::string_view dotted, const std::string& origin,
                                   std::string_view expected) {
    auto node = table.at_path(dotted);
    if (!node) return std::optional<T>{};
    if (auto value = node.value_exact<T>()) return std::optional<T>{*value};
    return make_error("{}: key '{}' must be a {}, found a {}", origin, dotted, expected, type_name(node.type()));
}

// toml++ 3.3 (Debian 12) has two bugs that hostile config text reaches: it asserts (aborts) on a
// header opening with three brackets ("[[[", also with blanks between), and its Unicode tables
// reach an unreachable branch (undefined behaviour) on some non-ASCII characters outside strings.
// So config text is checked first: ASCII only (TOML's \uXXXX escapes still write any character
// into a string), no control characters but tab and line ends, and no line opening with "[[[" (a
// line of a multi-line array value that opens that way is refused too: rare, and said clearly).
Result<void> check_config_text(std::string_view text, std::string_view origin) {
    std::size_t line = 1;
    for (std::size_t start = 0; start <= text.size(); ++line) {
        std::size_t end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        std::string_view row = text.substr(start, end - start);
        for (char c : row) {
            auto byte = static_cast<unsigned char>(c);
            if (byte >= 0x80)
                return make_error("{}:{}: byte 0x{:02x} is not ASCII (write other characters as \\uXXXX escapes in a string)",
                                  origin, line, byte);
            if ((byte < 0x20 && c != '\t' && c != '\r') || byte == 0x7f)
                return make_error("{}:{}: control character 0x{:02x}", origin, line, byte);
        }
        int brackets = 0;
        for (char c : row) {
            if (c == ' ' || c == '\t') continue;
            if (c != '[') break;
            if (++brackets == 3)
                return make_error("{}:{}: a line may not open with '[[[' (a table header takes [name] or [[name]])", origin, line);
        }
        start = end + 1;
    }
    return {};
}

}  // namespace

Config::Config(std::unique_ptr<toml::table> table, std::string origin)
    : table_(std::move(table)), origin_(std::move(origin)) {}
Config::Config(Config&&) noexcept = default;
Config& Config::operator=(Config&&) noexcept = default;
Config::~Config() = default;

Result<Config> Config::parse(std::string_view text, std::string_view origin) {
    DSTACK_CHECK(check_config_text(text, origin));
    toml::parse_result parsed = toml::parse(text, origin);
    if (!parsed) {
        const auto& err = parsed.error();
        return make_error("{}:{}:{}: {}", origin, err.source().begin.line, err.source().begin.column, err.description());
    }
    return Config(std::make_unique<toml::table>(std::move(parsed).table()), std::string(origin));
}

Result<Config> Config::load(const std::filesystem::path& path) {
    DSTACK_TRY(std::string text, read_text_file(path, max_config_size));
    return parse(text, path.string());
}

Result<std::optional<std::string>> Config::get_string(std::string_view dotted) const {
    return get_typed<std::string>(*table_, dotted, origin_, "string");
}
Result<std::optional<std::int64_t>> Config::get_int(std::string_view dotted) const {
    return get_typed<std::int64_t>(*table_, dotted, origin_, "integer");
}
Result<std::optional<bool>> Config::get_bool(std::string_view dotted) const {
    return get_typed<bool>(*table_, dotted, origin_, "boolean");
}

Result<std::optional<std::vector<std::string>>> Config::get_string_array(std::string_view dotted) const {
    auto node = table_->at_path(dotted);
    if (!node) return std::optional<std::vector<std::string>>{};
    const auto* array = node.as_array();
    if (!array) return make_error("{}: key '{}' must be an array of strings, found a {}", origin_, dotted, type_name(node.type()));
    std::vector<std::string> out;
    for (std::size_t i = 0; i < array->size(); ++i) {
        const auto* s = (*array)[i].as_string();
        if (!s) return make_error("{}: key '{}' item {} must be a string", origin_, dotted, i);
        out.push_back(s->get());
    }
    return std::optional<std::vector<std::string>>{std::move(out)};
}

Result<std::optional<std::vector<std::string>>> Config::get_words(std::string_view dotted) const {
    auto node = table_->at_path(dotted);
    if (!node) return std::optional<std::vector<std::string>>{};
    auto word = [](const toml::node& item) -> std::optional<std::string> {
        if (const auto* s = item.as_string()) return s->get();
        if (const auto* i = item.as_integer()) return std::to_string(i->get());
        if (const auto* b = item.as_boolean()) return std::string(b->get() ? "true" : "false");
        return std::nullopt;
    };
    std::vector<std::string> out;
    if (const auto* array = node.as_array()) {
        for (std::size_t i = 0; i < array->size(); ++i) {
            auto item = word((*array)[i]);
            if (!item) return make_error("{}: key '{}' item {} must be a string, integer or boolean", origin_, dotted, i);
            out.push_back(std::move(*item));
        }
    } else if (auto item = word(*node.node())) {
        out.push_back(std::move(*item));
    } else {
        return make_error("{}: key '{}' must be a string, integer, boolean or an array of those, found a {}", origin_, dotted,
                          type_name(node.type()));
    }
    return std::optional<std::vector<std::string>>{std::move(out)};
}

std::vector<std::string> Config::warn_unknown_keys(const std::vector<std::string>& known) const {
    std::vector<std::string> unknown;
    collect_unknown(*table_, "", known, unknown);
    for (const auto& key : unknown) log::warn("{}: unknown key '{}' is ignored (check its spelling)", origin_, key);
    return unknown;
}

}  // namespace dstack
