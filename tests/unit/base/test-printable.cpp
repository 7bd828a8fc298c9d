#include <doctest/doctest.h>

#include "dstack/base/printable.hpp"

using dstack::printable_text;

TEST_CASE("printable_text keeps printable ASCII and valid UTF-8") {
    CHECK(printable_text("Intel SGX Root CA") == "Intel SGX Root CA");
    CHECK(printable_text("caf\xc3\xa9 \xe2\x9c\x93") == "caf\xc3\xa9 \xe2\x9c\x93");
}

TEST_CASE("printable_text escapes controls, C1 controls and bytes that are not UTF-8") {
    CHECK(printable_text("a\nb\x1b[31m") == "a\\x0ab\\x1b[31m");
    CHECK(printable_text("CERTIFICA\xb9" "E") == "CERTIFICA\\xb9E");
    CHECK(printable_text("\xc2\x9b") == "\\xc2\\x9b");  // U+009B, a terminal control sequence introducer
    CHECK(printable_text("\x7f") == "\\x7f");
    CHECK(printable_text("\xe2\x9c") == "\\xe2\\x9c");  // truncated sequence
}
