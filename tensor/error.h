// Two failure channels.
//
//   HYDRA_CHECK(cond, msg...)   a user/API error: wrong shape, bad value, bad file. Throws hydra::Error
//                               whose message the caller (or the CLI) shows as is.
//   HYDRA_ASSERT(cond, msg...)  an internal invariant: if it fails, Hydra has a bug. Throws
//                               hydra::InternalError. The library never calls exit() or abort().
//
// Messages are built from any streamable values: HYDRA_CHECK(a == b, "add: shapes ", sa, " and ", sb, " differ").
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace hydra {

// A user-facing error: bad arguments, shapes, files. The CLI turns it into exit code 2.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A broken internal invariant: a bug in Hydra itself.
class InternalError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

namespace detail {
template <class... Args>
std::string concat_message(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace hydra

#define HYDRA_CHECK(cond, ...)                                                \
  do {                                                                        \
    if (!(cond)) throw ::hydra::Error(::hydra::detail::concat_message(__VA_ARGS__)); \
  } while (0)

#define HYDRA_ASSERT(cond, ...)                                                              \
  do {                                                                                       \
    if (!(cond))                                                                             \
      throw ::hydra::InternalError(::hydra::detail::concat_message(                          \
          "internal error at ", __FILE__, ":", __LINE__, ": ", #cond, " ", ##__VA_ARGS__)); \
  } while (0)
