// Logging to stderr with levels; plain text for people or JSON lines for collectors.
// Never log secrets: keys, seeds and tokens stay out of every message.
#pragma once

#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "dstack/base/result.hpp"

namespace dstack::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3, off = 4 };
enum class Format { text, json };

struct Settings {
    Level level = Level::info;
    Format format = Format::text;
    std::string_view component = "dstack";  // e.g. the applet name
};

void configure(const Settings& settings);
const Settings& settings();
Result<Level> parse_level(std::string_view name);
bool enabled(Level level);

// Writes one complete line with a single write(2), so lines from threads never interleave.
void write(Level level, std::string_view message);

template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(Level::debug)) write(Level::debug, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(Level::info)) write(Level::info, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(Level::warn)) write(Level::warn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(Level::error)) write(Level::error, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace dstack::log
