#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "dstack/base/file-lock.hpp"

using namespace dstack;
namespace fs = std::filesystem;

TEST_CASE("a file lock excludes a second holder (another thread's own descriptor) until it is released") {
    char pattern[] = "/tmp/dstack-unit-XXXXXX";
    REQUIRE(mkdtemp(pattern) != nullptr);
    fs::path dir = pattern;
    auto path = dir / "state.lock";

    std::atomic<bool> second_holds{false};
    std::thread second;
    {
        auto first = FileLock::acquire(path);
        REQUIRE(first.ok());
        struct stat st{};
        REQUIRE(::stat(path.c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
        second = std::thread([&] {
            auto lock = FileLock::acquire(path);
            if (lock) second_holds = true;
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        CHECK_FALSE(second_holds.load());  // still blocked: the first lock is held
    }
    second.join();
    CHECK(second_holds.load());

    // Moved-from locks release nothing; the moved-to one still excludes.
    auto moved = FileLock::acquire(path);
    REQUIRE(moved.ok());
    FileLock holder = std::move(*moved);
    std::atomic<bool> got{false};
    std::thread third([&] { got = FileLock::acquire(path).ok(); });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK_FALSE(got.load());
    { FileLock released = std::move(holder); }
    third.join();
    CHECK(got.load());

    // try_acquire does not wait: nothing while another holds the lock, the lock once it is free.
    {
        auto held = FileLock::acquire(path);
        REQUIRE(held.ok());
        auto tried = FileLock::try_acquire(path);
        REQUIRE(tried.ok());
        CHECK_FALSE(tried->has_value());
    }
    auto free_now = FileLock::try_acquire(path);
    REQUIRE(free_now.ok());
    CHECK(free_now->has_value());
    CHECK_FALSE(FileLock::try_acquire(path)->has_value());

    fs::create_symlink(path, dir / "link.lock");
    CHECK_FALSE(FileLock::acquire(dir / "link.lock").ok());
    fs::create_directory(dir / "dir.lock");
    auto on_dir = FileLock::acquire(dir / "dir.lock");
    CHECK_FALSE(on_dir.ok());
    fs::remove_all(dir);
}
