// shrink::Error — the one exception type for user-actionable failures
// (malformed files, shape mismatches, unsupported models). The CLI prints
// what() on one line and exits non-zero.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace shrink {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(detail::concat(args...));
}

}  // namespace shrink

// SHRINK_CHECK(cond, parts...) throws shrink::Error(concat(parts...)) when cond is false.
#define SHRINK_CHECK(cond, ...)                  \
  do {                                           \
    if (!(cond)) ::shrink::fail(__VA_ARGS__);    \
  } while (0)
