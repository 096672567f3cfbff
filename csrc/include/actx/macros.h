#pragma once

// Symbol visibility of the actx library: ACTX_BUILDING_LIBRARY is defined while the library
// itself is compiled, so that its public functions are exported, and imported by users.
#if defined(_WIN32)
#if defined(ACTX_BUILDING_LIBRARY)
#define ACTX_API __declspec(dllexport)
#else
#define ACTX_API __declspec(dllimport)
#endif
#else
#define ACTX_API __attribute__((visibility("default")))
#endif

namespace actx {
namespace detail {
// The operators register themselves from static initializers of the library. An application that
// links the library but names none of its symbols would let the linker drop it (--as-needed), and
// the operators would silently be missing. Every file that includes an actx header takes the
// address of this function, which keeps the library linked.
ACTX_API int link_anchor();
[[maybe_unused]] inline int (*const keep_library_linked)() = &link_anchor;
} // namespace detail
} // namespace actx
