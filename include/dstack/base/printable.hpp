// Text from outside (error messages quoting hostile input, names from certificates) made safe
// to print on a terminal or put in a JSON string: valid UTF-8 stays, control characters and bytes
// that are not UTF-8 become \xNN.
#pragma once

#include <string>
#include <string_view>

namespace dstack {

std::string printable_text(std::string_view text);

}  // namespace dstack
