#pragma once

// Symbol visibility of the actx library: ACTX_BUILDING_LIBRARY is defined while
// the library itself is compiled, so that its public functions are exported,
// and imported by users.
#if defined(_WIN32)
#if defined(ACTX_BUILDING_LIBRARY)
#define ACTX_API __declspec(dllexport)
#else
#define ACTX_API __declspec(dllimport)
#endif
#else
#define ACTX_API __attribute__((visibility("default")))
#endif

// Emitted even when nothing refers to it (see keep_library_linked below).
#if defined(__GNUC__) || defined(__clang__)
#define ACTX_USED __attribute__((used))
#else
#define ACTX_USED
#endif

namespace actx {
namespace detail {
// The operators register themselves from static initializers of the library. An
// application that links the library but names none of its symbols lets the
// linker drop it (GCC on Debian and Ubuntu links with --as-needed by default),
// and the operators are then missing: loading a TorchScript model or an
// AOTInductor package that uses them fails. Every file that includes an actx
// header keeps a pointer to this function, so the application refers to the
// library. `used`: without it the compiler drops the unreferenced variable, and
// the reference with it. (CMake users get the same from the actx::actx target,
// which links the library --no-as-needed.)
ACTX_API int link_anchor();
[[maybe_unused]] ACTX_USED inline int (*const keep_library_linked)() =
    &link_anchor;
} // namespace detail
} // namespace actx
