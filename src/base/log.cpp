#include "dstack/base/log.hpp"

#include "dstack/base/json-escape.hpp"

#include <unistd.h>

#include <ctime>
#include <string>

namespace dstack::log {
namespace {

Settings current;  // set once at start-up by the applet, before any thread starts

std::string_view level_name(Level level) {
    switch (level) {
        case Level::debug: return "debug";
        case Level::info: return "info";
        case Level::warn: return "warn";
        case Level::error: return "error";
        case Level::off: return "off";
    }
    return "?";
}

std::string timestamp() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    tm utc{};
    gmtime_r(&ts.tv_sec, &utc);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday,
                       utc.tm_hour, utc.tm_min, utc.tm_sec, ts.tv_nsec / 1000000);
}

}  // namespace

void configure(const Settings& settings) { current = settings; }
const Settings& settings() { return current; }
bool enabled(Level level) { return level >= current.level && level != Level::off; }

Result<Level> parse_level(std::string_view name) {
    for (Level level : {Level::debug, Level::info, Level::warn, Level::error, Level::off})
        if (name == level_name(level)) return level;
    if (name == "warning") return Level::warn;
    return make_error("unknown log level '{}' (expected debug, info, warn, error or off)", name);
}

void write(Level level, std::string_view message) {
    std::string line;
    if (current.format == Format::json) {
        line = fmt::format(R"({{"ts":"{}","level":"{}","component":"{}","msg":"{}"}})""\n", timestamp(),
                           level_name(level), json_escape(current.component), json_escape(message));
    } else {
        line = fmt::format("{} {:5} {}: ", timestamp(), level_name(level), current.component);
        // Keep one event on one line: control characters from outside must not forge log lines.
        for (unsigned char c : message) {
            if (c == '\n') line += "\\n";
            else if (c < 0x20 && c != '\t') line += fmt::format("\\x{:02x}", c);
            else line += static_cast<char>(c);
        }
        line += '\n';
    }
    std::string_view rest = line;
    while (!rest.empty()) {
        ssize_t n = ::write(STDERR_FILENO, rest.data(), rest.size());
        if (n <= 0) break;
        rest.remove_prefix(static_cast<std::size_t>(n));
    }
}

}  // namespace dstack::log
