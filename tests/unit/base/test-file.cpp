#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "dstack/base/file.hpp"

using namespace dstack;
namespace fs = std::filesystem;

namespace {
fs::path temp_dir() {
    char pattern[] = "/tmp/dstack-unit-XXXXXX";
    REQUIRE(mkdtemp(pattern) != nullptr);
    return pattern;
}
}  // namespace

TEST_CASE("atomic writes are private and replace the old content") {
    auto dir = temp_dir();
    auto path = dir / "key.pem";
    auto old_umask = umask(0);  // even a permissive umask must not widen the mode
    REQUIRE(write_file_atomic(path, as_bytes("first")).ok());
    umask(old_umask);
    struct stat st{};
    REQUIRE(stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    REQUIRE(write_file_atomic(path, as_bytes("second")).ok());
    CHECK(*read_text_file(path, 100) == "second");
    int entries = 0;
    for ([[maybe_unused]] auto& e : fs::directory_iterator(dir)) ++entries;
    CHECK(entries == 1);  // no temporary left behind
    REQUIRE(write_file_atomic(dir / "public.crt", as_bytes("x"), 0644).ok());
    REQUIRE(stat((dir / "public.crt").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0644);
    CHECK_FALSE(write_file_atomic(dir / "missing" / "x", as_bytes("x")).ok());
    fs::remove_all(dir);
}

TEST_CASE("reads are bounded") {
    auto dir = temp_dir();
    auto path = dir / "big";
    REQUIRE(write_file_atomic(path, Bytes(1000, 0x41)).ok());
    CHECK(read_file(path, 1000)->size() == 1000);
    auto too_big = read_file(path, 999);
    REQUIRE_FALSE(too_big.ok());
    CHECK(too_big.error().message.find("too large") != std::string::npos);
    auto missing = read_file(dir / "nope", 10);
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().message.find("No such file") != std::string::npos);
    CHECK_FALSE(read_file(dir, 10).ok());
    // A device without a size is cut at the limit too.
    CHECK_FALSE(read_file("/dev/zero", 4096).ok());
    fs::remove_all(dir);
}

TEST_CASE("a command-line input is a file or standard input, bounded either way") {
    auto dir = std::filesystem::temp_directory_path() / fmt::format("dstack-stdin-{}", ::getpid());
    std::filesystem::create_directories(dir);
    auto path = dir / "input.bin";
    REQUIRE(write_file_atomic(path, as_bytes(std::string_view("hello"))));
    auto from_file = read_file_or_stdin(path.string(), 16);
    REQUIRE(from_file);
    CHECK(from_file->size() == 5);

    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    REQUIRE(::write(pipe_fds[1], "0123456789", 10) == 10);
    ::close(pipe_fds[1]);
    int saved = ::dup(STDIN_FILENO);
    ::dup2(pipe_fds[0], STDIN_FILENO);
    auto too_much = read_file_or_stdin("-", 4);
    ::dup2(saved, STDIN_FILENO);
    ::close(saved);
    ::close(pipe_fds[0]);
    REQUIRE_FALSE(too_much);
    CHECK(too_much.error().message == "standard input: more than 4 bytes");
    std::filesystem::remove_all(dir);
}
