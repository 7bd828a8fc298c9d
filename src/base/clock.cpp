#include "dstack/base/clock.hpp"

#include <charconv>
#include <chrono>

namespace dstack {
namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool parse_fixed(std::string_view text, std::size_t pos, std::size_t len, int& out) {
    if (pos + len > text.size()) return false;
    for (std::size_t i = pos; i < pos + len; ++i)
        if (text[i] < '0' || text[i] > '9') return false;
    auto r = std::from_chars(text.data() + pos, text.data() + pos + len, out);
    return r.ec == std::errc();
}

}  // namespace

UnixSeconds system_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string format_rfc3339(UnixSeconds t) {
    std::int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    std::int64_t secs = t - days * 86400;
    // civil_from_days
    days += 719468;
    const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    const unsigned doe = static_cast<unsigned>(days - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", y, m, d, secs / 3600, secs / 60 % 60, secs % 60);
}

Result<UnixSeconds> parse_rfc3339(std::string_view text) {
    int year, month, day, hour, minute, second;
    auto bad = [&] { return make_error("invalid timestamp '{}': expected YYYY-MM-DDTHH:MM:SSZ", text); };
    if (!parse_fixed(text, 0, 4, year) || text.size() < 20 || text[4] != '-' || !parse_fixed(text, 5, 2, month) ||
        text[7] != '-' || !parse_fixed(text, 8, 2, day) || (text[10] != 'T' && text[10] != 't' && text[10] != ' ') ||
        !parse_fixed(text, 11, 2, hour) || text[13] != ':' || !parse_fixed(text, 14, 2, minute) || text[16] != ':' ||
        !parse_fixed(text, 17, 2, second))
        return bad();
    static constexpr int month_days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12 || day < 1 || day > month_days[month - 1] || hour > 23 || minute > 59 || second > 60)
        return bad();
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (month == 2 && day == 29 && !leap) return bad();
    std::size_t pos = 19;
    if (pos < text.size() && text[pos] == '.') {
        ++pos;
        std::size_t start = pos;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
        if (pos == start) return bad();
    }
    std::int64_t offset = 0;
    std::string_view zone = text.substr(pos);
    if (zone == "Z" || zone == "z") {
        offset = 0;
    } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
        int oh, om;
        if (!parse_fixed(zone, 1, 2, oh) || !parse_fixed(zone, 4, 2, om) || oh > 23 || om > 59) return bad();
        offset = (oh * 3600 + om * 60) * (zone[0] == '+' ? 1 : -1);
    } else {
        return bad();
    }
    std::int64_t days = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
    return days * 86400 + hour * 3600 + minute * 60 + std::min(second, 59) - offset;
}

Result<UnixSeconds> parse_time(std::string_view text) {
    if (!text.empty() && text.size() <= 12 && text.find_first_not_of("0123456789") == std::string_view::npos) {
        UnixSeconds seconds = 0;
        std::from_chars(text.data(), text.data() + text.size(), seconds);
        return seconds;
    }
    auto parsed = parse_rfc3339(text);
    if (!parsed) return make_error("'{}' is neither Unix seconds nor an RFC 3339 time", text);
    return parsed;
}

}  // namespace dstack
