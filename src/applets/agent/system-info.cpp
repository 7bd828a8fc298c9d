#include "system-info.hpp"

#include <ifaddrs.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "dstack/base/file.hpp"
#include "support/json-object.hpp"

namespace dstack::applets::agent {

namespace {

std::string read_small(const std::string& path) {
    auto text = read_text_file(path, 1024 * 1024);
    return text ? *text : std::string();
}

std::string os_release_value(const std::string& text, std::string_view key) {
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.rfind(std::string(key) + "=", 0) != 0) continue;
        auto value = line.substr(key.size() + 1);
        if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
        return value;
    }
    return "";
}

std::map<std::string, std::uint64_t> meminfo_bytes() {
    std::map<std::string, std::uint64_t> values;
    std::istringstream lines(read_small("/proc/meminfo"));
    std::string name;
    std::uint64_t kib = 0;
    std::string unit;
    while (lines >> name >> kib) {
        std::getline(lines, unit);
        if (!name.empty() && name.back() == ':') name.pop_back();
        values[name] = kib * 1024;
    }
    return values;
}

std::string cpu_model() {
    std::istringstream lines(read_small("/proc/cpuinfo"));
    std::string line, model, mhz;
    while (std::getline(lines, line)) {
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        auto key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
        auto value = line.substr(std::min(line.size(), colon + 2));
        if (key == "model name" && model.empty()) model = value;
        if (key == "cpu MHz" && mhz.empty()) mhz = value;
    }
    if (mhz.empty()) return model;
    return model + " @" + std::to_string(static_cast<long>(std::lround(std::atof(mhz.c_str())))) + " MHz";
}

std::uint64_t statistic(const std::string& interface, const char* name) {
    auto text = read_small("/sys/class/net/" + interface + "/statistics/" + name);
    return std::strtoull(text.c_str(), nullptr, 10);
}

bool reported_interface(std::string_view name) {
    return name == "dstack-wg0" || name.rfind("enp", 0) == 0 || name.rfind("eth", 0) == 0;
}

}  // namespace

net::prpc::Reply system_info(const std::vector<std::string>& data_disks) {
    JsonObject out;
    auto release = read_small("/etc/os-release");
    utsname uts{};
    uname(&uts);
    out.string("os_name", os_release_value(release, "NAME"));
    out.string("os_version", os_release_value(release, "VERSION_ID"));
    out.string("kernel_version", uts.release);
    out.string("cpu_model", cpu_model());
    out.number("num_cpus", static_cast<std::uint64_t>(std::max(0L, sysconf(_SC_NPROCESSORS_ONLN))));
    auto memory = meminfo_bytes();
    auto total = memory["MemTotal"], available = memory["MemAvailable"], free = memory["MemFree"];
    out.number("total_memory", total).number("available_memory", available);
    out.number("used_memory", total > available ? total - available : 0).number("free_memory", free);
    auto swap_total = memory["SwapTotal"], swap_free = memory["SwapFree"];
    out.number("total_swap", swap_total).number("used_swap", swap_total > swap_free ? swap_total - swap_free : 0);
    out.number("free_swap", swap_free);
    out.number("uptime", static_cast<std::uint64_t>(std::atof(read_small("/proc/uptime").c_str())));
    double one = 0, five = 0, fifteen = 0;
    std::istringstream(read_small("/proc/loadavg")) >> one >> five >> fifteen;
    out.number("loadavg_one", static_cast<std::uint64_t>(one * 100));
    out.number("loadavg_five", static_cast<std::uint64_t>(five * 100));
    out.number("loadavg_fifteen", static_cast<std::uint64_t>(fifteen * 100));
    auto disks = data_disks;
    std::sort(disks.begin(), disks.end());
    rapidjson::Value array(rapidjson::kArrayType);
    for (const auto& mount : disks) {
        struct statvfs fs {};
        if (statvfs(mount.c_str(), &fs) != 0) continue;
        JsonObject disk;
        disk.string("name", mount).string("mount_point", mount);
        disk.number("total_size", static_cast<std::uint64_t>(fs.f_blocks) * fs.f_frsize);
        disk.number("free_size", static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize);
        rapidjson::Value item;
        item.CopyFrom(disk.document(), out.allocator());
        array.PushBack(std::move(item), out.allocator());
    }
    out.value("disks", std::move(array));
    return out.reply();
}

net::prpc::Reply network_info() {
    JsonObject out;
    std::vector<std::string> dns;
    std::istringstream resolv(read_small("/etc/resolv.conf"));
    std::string line;
    while (std::getline(resolv, line)) {
        std::istringstream words(line);
        std::string word, server;
        if (words >> word >> server && word == "nameserver") dns.push_back(server);
    }
    out.string_list("dns_servers", dns);

    rapidjson::Value gateways(rapidjson::kArrayType);
    std::istringstream routes(read_small("/proc/net/route"));
    std::getline(routes, line);  // header
    while (std::getline(routes, line)) {
        std::istringstream fields(line);
        std::string interface, destination, gateway;
        if (!(fields >> interface >> destination >> gateway) || destination != "00000000") continue;
        in_addr address{};
        address.s_addr = static_cast<in_addr_t>(std::strtoul(gateway.c_str(), nullptr, 16));
        char text[INET_ADDRSTRLEN] = {};
        inet_ntop(AF_INET, &address, text, sizeof text);
        JsonObject entry;
        entry.string("address", text);
        rapidjson::Value item;
        item.CopyFrom(entry.document(), out.allocator());
        gateways.PushBack(std::move(item), out.allocator());
    }
    out.value("gateways", std::move(gateways));

    std::map<std::string, std::vector<std::pair<std::string, unsigned>>> addresses;
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) == 0) {
        for (auto* entry = list; entry; entry = entry->ifa_next) {
            if (!entry->ifa_addr || !reported_interface(entry->ifa_name)) continue;
            int family = entry->ifa_addr->sa_family;
            if (family != AF_INET && family != AF_INET6) continue;
            char text[INET6_ADDRSTRLEN] = {};
            const void* raw = family == AF_INET ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(entry->ifa_addr)->sin_addr)
                                                : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(entry->ifa_addr)->sin6_addr);
            inet_ntop(family, raw, text, sizeof text);
            unsigned prefix = 0;
            if (entry->ifa_netmask) {
                const auto* mask = family == AF_INET
                                       ? reinterpret_cast<const unsigned char*>(&reinterpret_cast<sockaddr_in*>(entry->ifa_netmask)->sin_addr)
                                       : reinterpret_cast<const unsigned char*>(&reinterpret_cast<sockaddr_in6*>(entry->ifa_netmask)->sin6_addr);
                for (int i = 0; i < (family == AF_INET ? 4 : 16); ++i) prefix += __builtin_popcount(mask[i]);
            }
            addresses[entry->ifa_name].emplace_back(text, prefix);
        }
        freeifaddrs(list);
    }
    rapidjson::Value interfaces(rapidjson::kArrayType);
    for (const auto& [name, list_of] : addresses) {
        JsonObject interface;
        interface.string("name", name);
        rapidjson::Value items(rapidjson::kArrayType);
        for (const auto& [address, prefix] : list_of) {
            JsonObject item;
            item.string("address", address).number("prefix", prefix);
            rapidjson::Value value;
            value.CopyFrom(item.document(), interface.allocator());
            items.PushBack(std::move(value), interface.allocator());
        }
        interface.value("addresses", std::move(items));
        interface.number("rx_bytes", statistic(name, "rx_bytes")).number("tx_bytes", statistic(name, "tx_bytes"));
        interface.number("rx_errors", statistic(name, "rx_errors")).number("tx_errors", statistic(name, "tx_errors"));
        rapidjson::Value value;
        value.CopyFrom(interface.document(), out.allocator());
        interfaces.PushBack(std::move(value), out.allocator());
    }
    out.value("interfaces", std::move(interfaces));
    out.string("wg_info", "");
    return out.reply();
}

}  // namespace dstack::applets::agent
