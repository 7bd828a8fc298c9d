// File reading with a size limit, and atomic private writes for keys and state.
#pragma once

#include <filesystem>
#include <string>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack {

// Reads a whole file; refuses files larger than max_size with a message naming both sizes.
Result<Bytes> read_file(const std::filesystem::path& path, std::size_t max_size);
Result<std::string> read_text_file(const std::filesystem::path& path, std::size_t max_size);
// A command-line input: a file, or "-" for standard input; at most `max_size` bytes either way.
Result<Bytes> read_file_or_stdin(const std::string& path, std::size_t max_size);

// Writes to a temporary file in the same directory with the given mode (0600 by default),
// fsyncs it, renames it over path and fsyncs the directory: readers see the old or the new
// content, never a mix, and the file is never readable by others, not even briefly.
Result<void> write_file_atomic(const std::filesystem::path& path, ByteView content, unsigned mode = 0600);

}  // namespace dstack
