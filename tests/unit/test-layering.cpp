// mbedTLS stays behind the crypto layer. The build already hides its headers from every layer but
// crypto and net (src/crypto/meson.build); this reads the sources themselves, so that the rule
// also holds for what the build does not compile here (the fuzz build, a new file not yet listed)
// and so that net's use is held to mbedTLS's TLS layer:
// - base, tee, app and the applets name nothing of mbedTLS or PSA, nor include their headers;
// - net includes only <mbedtls/ssl.h> and uses only the TLS layer's names (mbedtls_ssl_*, its
//   error codes and the verification flags it reports);
// - psa_crypto_init is called in one place, the crypto layer's one-time initialisation.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace fs = std::filesystem;

const fs::path source_root = DSTACK_SOURCE_ROOT;

bool is_identifier_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

std::string read_all(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE_MESSAGE(in.good(), "cannot read " << path.string());
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// The code with comments and the contents of string and character literals (raw strings too)
// blanked out, line breaks kept: what is left is what the compiler would see as names.
std::string code_only(std::string_view text) {
    std::string out(text);
    std::size_t i = 0;
    auto blank = [&out](std::size_t from, std::size_t to) {
        for (std::size_t k = from; k < to && k < out.size(); ++k)
            if (out[k] != '\n') out[k] = ' ';
    };
    while (i < text.size()) {
        if (text.compare(i, 2, "//") == 0) {
            std::size_t end = text.find('\n', i);
            if (end == std::string_view::npos) end = text.size();
            blank(i, end);
            i = end;
        } else if (text.compare(i, 2, "/*") == 0) {
            std::size_t end = text.find("*/", i + 2);
            end = end == std::string_view::npos ? text.size() : end + 2;
            blank(i, end);
            i = end;
        } else if (text[i] == 'R' && i + 1 < text.size() && text[i + 1] == '"' &&
                   (i == 0 || !is_identifier_char(text[i - 1]) || text[i - 1] == '8' || text[i - 1] == 'u' ||
                    text[i - 1] == 'U' || text[i - 1] == 'L')) {
            std::size_t open = text.find('(', i + 2);
            REQUIRE(open != std::string_view::npos);
            std::string close = ")" + std::string(text.substr(i + 2, open - i - 2)) + "\"";
            std::size_t end = text.find(close, open);
            end = end == std::string_view::npos ? text.size() : end + close.size();
            blank(i + 1, end);
            i = end;
        } else if (text[i] == '"' || (text[i] == '\'' && (i == 0 || !is_identifier_char(text[i - 1])))) {
            // A ' after a digit or letter is a digit separator (1'000), not a literal.
            char quote = text[i];
            std::size_t k = i + 1;
            while (k < text.size() && text[k] != quote && text[k] != '\n') k += text[k] == '\\' ? 2 : 1;
            blank(i + 1, k);
            i = k + 1;
        } else {
            ++i;
        }
    }
    return out;
}

struct Use {
    std::string where;  // "src/tee/pki.cpp:12"
    std::string what;   // the name or the included header
};

// Every name starting with one of `prefixes`, and every header included from mbedtls/ or psa/.
std::vector<Use> mbedtls_uses(const fs::path& file) {
    std::string text = read_all(file);
    std::string code = code_only(text);
    std::string relative = fs::relative(file, source_root).string();
    std::vector<Use> uses;
    std::size_t line = 1;
    for (std::size_t i = 0; i < code.size(); ++i) {
        if (code[i] == '\n') {
            ++line;
            continue;
        }
        if (code[i] == '#') {
            // #include <mbedtls/...> (the <...> survives blanking) or "mbedtls/..." (read from the text).
            std::size_t k = i + 1;
            while (k < code.size() && (code[k] == ' ' || code[k] == '\t')) ++k;
            if (code.compare(k, 7, "include") == 0) {
                std::size_t eol = text.find('\n', k);
                std::string_view directive = std::string_view(text).substr(k + 7, eol == std::string::npos ? std::string::npos : eol - k - 7);
                std::size_t start = directive.find_first_of("<\"");
                if (start != std::string_view::npos) {
                    std::string_view header = directive.substr(start + 1);
                    header = header.substr(0, header.find_first_of(">\""));
                    if (header.starts_with("mbedtls/") || header.starts_with("psa/"))
                        uses.push_back({relative + ":" + std::to_string(line), "#include " + std::string(header)});
                }
                // The header's name is not a use of the names in it.
                i = (eol == std::string::npos ? code.size() : eol) - 1;
            }
            continue;
        }
        if (!is_identifier_char(code[i]) || (i > 0 && is_identifier_char(code[i - 1]))) continue;
        std::size_t end = i;
        while (end < code.size() && is_identifier_char(code[end])) ++end;
        std::string_view name = std::string_view(code).substr(i, end - i);
        for (std::string_view prefix : {"mbedtls_", "MBEDTLS_", "psa_", "PSA_"}) {
            if (name.starts_with(prefix)) {
                uses.push_back({relative + ":" + std::to_string(line), std::string(name)});
                break;
            }
        }
        i = end - 1;
    }
    return uses;
}

std::vector<fs::path> sources_under(const fs::path& relative_dir) {
    std::vector<fs::path> files;
    fs::path dir = source_root / relative_dir;
    REQUIRE_MESSAGE(fs::is_directory(dir), "source directory missing: " << dir.string());
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
        auto extension = entry.path().extension();
        if (entry.is_regular_file() && (extension == ".cpp" || extension == ".hpp" || extension == ".h"))
            files.push_back(entry.path());
    }
    REQUIRE_FALSE(files.empty());
    return files;
}

bool starts_with_any(std::string_view name, std::initializer_list<std::string_view> prefixes) {
    for (auto prefix : prefixes)
        if (name.starts_with(prefix)) return true;
    return false;
}

std::string listed(const std::vector<Use>& uses) {
    std::string text;
    for (const auto& use : uses) text += "\n  " + use.where + ": " + use.what;
    return text;
}

}  // namespace

TEST_CASE("layering: the blanking that the checks below rely on") {
    auto kept = [](std::string_view text) {
        std::string code = code_only(text);
        CHECK(code.size() == text.size());
        return code;
    };
    CHECK(kept("a // mbedtls_x\nb").find("mbedtls") == std::string::npos);
    CHECK(kept("a // mbedtls_x\nb").ends_with("\nb"));
    CHECK(kept("x /* psa_y */ z") == "x             z");
    // "*/*" inside a string starts no comment; the name after the string is still seen.
    CHECK(kept("s(\"*/* mbedtls_q\"); psa_r") == "s(\"             \"); psa_r");
    CHECK(kept("R\"d(mbedtls_q)d\" psa_r") == "R" + std::string(16, ' ') + "psa_r");
    CHECK(kept("1'000 + 'x' + mbedtls_z") == "1'000 + ' ' + mbedtls_z");
    CHECK(kept("'\\'' + mbedtls_z").ends_with("mbedtls_z"));
}

TEST_CASE("layering: base, tee, app and the applets use nothing of mbedTLS or PSA") {
    std::vector<Use> found;
    for (const char* dir : {"src/base", "src/tee", "src/app", "src/applets", "include/dstack/base", "include/dstack/tee",
                            "include/dstack/app"}) {
        if (!fs::exists(source_root / dir)) continue;  // a layer not written yet
        for (const auto& file : sources_under(dir)) {
            auto uses = mbedtls_uses(file);
            found.insert(found.end(), uses.begin(), uses.end());
        }
    }
    INFO("mbedTLS or PSA outside crypto and net (move what is needed into crypto):" << listed(found));
    CHECK(found.empty());
}

TEST_CASE("layering: net uses only mbedTLS's TLS layer") {
    std::vector<Use> outside_tls;
    for (const auto& file : sources_under("src/net")) {
        for (const auto& use : mbedtls_uses(file)) {
            bool allowed = use.what == "#include mbedtls/ssl.h" ||
                           starts_with_any(use.what, {"mbedtls_ssl_", "MBEDTLS_SSL_", "MBEDTLS_ERR_SSL_", "MBEDTLS_PRIVATE"}) ||
                           // what mbedtls_ssl_handshake and mbedtls_ssl_get_verify_result report
                           use.what == "MBEDTLS_ERR_X509_CERT_VERIFY_FAILED" || use.what.starts_with("MBEDTLS_X509_BADCERT_") ||
                           // net's own names for mbedTLS's error codes
                           use.what == "mbedtls_category" || use.what == "mbedtls_error_text";
            if (!allowed) outside_tls.push_back(use);
        }
    }
    for (const auto& file : sources_under("include/dstack/net")) {
        auto uses = mbedtls_uses(file);
        outside_tls.insert(outside_tls.end(), uses.begin(), uses.end());
    }
    INFO("net may drive mbedTLS's TLS layer only; certificates, keys and PSA come from crypto:" << listed(outside_tls));
    CHECK(outside_tls.empty());
}

TEST_CASE("layering: PSA Crypto is initialised in one place") {
    std::set<std::string> callers;
    for (const auto& file : sources_under("src")) {
        for (const auto& use : mbedtls_uses(file))
            if (use.what == "psa_crypto_init") callers.insert(use.where.substr(0, use.where.rfind(':')));
    }
    CHECK(callers == std::set<std::string>{"src/crypto/random.cpp"});
}
