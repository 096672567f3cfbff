// The AVX-512 element loops, run on any x86-64 CPU: SIMDe implements the
// AVX-512 intrinsics with whatever the CPU has, so vec_avx512.h and
// activation_kernel.h are checked against the scalar loops even where no
// AVX-512 hardware is at hand. (Where it is, the Python and C++ suites run the
// real thing too.) This executable links neither libactx nor the native AVX-512
// build. It is built twice: as kernels_avx512.cpp's loops, and with
// ACTX_AVX512_BF16 as kernels_avx512_bf16.cpp's.

#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <simde/x86/f16c.h>

#include <gtest/gtest.h>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <type_traits>
#include <vector>

// Intrinsics this SIMDe release lacks (or rounds otherwise), written lane by
// lane.
namespace emulated {

inline simde__m512 cvtph_ps(simde__m256i h) {
  uint16_t in[16];
  float out[16];
  simde_mm256_storeu_si256(reinterpret_cast<simde__m256i*>(in), h);
  for (int i = 0; i < 16; ++i) {
    out[i] = static_cast<float>(c10::Half(in[i], c10::Half::from_bits()));
  }
  return simde_mm512_loadu_ps(out);
}

inline simde__m256i cvtps_ph(simde__m512 v, int) {
  float in[16];
  uint16_t out[16];
  simde_mm512_storeu_ps(in, v);
  for (int i = 0; i < 16; ++i) {
    out[i] = std::isnan(in[i]) ? uint16_t(0x7E00)
                               : c10::Half(in[i]).x; // NaN-ness is what counts
  }
  return simde_mm256_loadu_si256(reinterpret_cast<const simde__m256i*>(out));
}

// The lanes of a 512-bit vector of S, added in lane order.
template <class S, class V>
inline S reduce_add(V v) {
  static_assert(sizeof(V) == 64, "a 512-bit vector");
  S in[64 / sizeof(S)];
  std::memcpy(in, &v, sizeof in);
  S s = 0;
  for (S x : in) {
    s += x;
  }
  return s;
}

inline simde__m256i cvtepi32_epi16(simde__m512i v) {
  int32_t in[16];
  int16_t out[16];
  simde_mm512_storeu_si512(in, v);
  for (int i = 0; i < 16; ++i) {
    out[i] = static_cast<int16_t>(in[i]); // truncation, as vpmovdw
  }
  return simde_mm256_loadu_si256(reinterpret_cast<const simde__m256i*>(out));
}

inline simde__m512i cvtepu16_epi32(simde__m256i v) {
  uint16_t in[16];
  int32_t out[16];
  simde_mm256_storeu_si256(reinterpret_cast<simde__m256i*>(in), v);
  for (int i = 0; i < 16; ++i) {
    out[i] = in[i];
  }
  return simde_mm512_loadu_si512(out);
}

inline simde__mmask16 test_epi16_mask(simde__m256i a, simde__m256i b) {
  uint16_t x[16], y[16];
  simde_mm256_storeu_si256(reinterpret_cast<simde__m256i*>(x), a);
  simde_mm256_storeu_si256(reinterpret_cast<simde__m256i*>(y), b);
  simde__mmask16 bits = 0;
  for (int i = 0; i < 16; ++i) {
    bits |= static_cast<simde__mmask16>(((x[i] & y[i]) != 0 ? 1 : 0) << i);
  }
  return bits;
}

// SIMDe's portable fnmadd rounds the product before the sum; the hardware's
// is fused, which the parity recovery relies on (an exact remainder).
inline simde__m512 fnmadd_ps(simde__m512 a, simde__m512 b, simde__m512 c) {
  float x[16], y[16], z[16];
  simde_mm512_storeu_ps(x, a);
  simde_mm512_storeu_ps(y, b);
  simde_mm512_storeu_ps(z, c);
  for (int i = 0; i < 16; ++i) {
    x[i] = std::fma(-x[i], y[i], z[i]);
  }
  return simde_mm512_loadu_ps(x);
}

// Lane arithmetic that wraps, as the instructions do; SIMDe's portable one
// computes in int32_t, whose overflow UndefinedBehaviorSanitizer reports (the
// parity recovery steps the bits of -0.0f, 0x80000000, in lanes it discards).
inline simde__m512i add_epi32(simde__m512i a, simde__m512i b) {
  uint32_t x[16], y[16];
  simde_mm512_storeu_si512(x, a);
  simde_mm512_storeu_si512(y, b);
  for (int i = 0; i < 16; ++i) {
    x[i] += y[i];
  }
  return simde_mm512_loadu_si512(x);
}

// 16-bit lanes (the parity range check subtracts storage bits), 256 or 512
// bits.
template <class V>
inline V sub_epi16(V a, V b) {
  constexpr int kLanes = sizeof(V) / sizeof(uint16_t);
  uint16_t x[kLanes], y[kLanes];
  std::memcpy(x, &a, sizeof a);
  std::memcpy(y, &b, sizeof b);
  for (int i = 0; i < kLanes; ++i) {
    x[i] = static_cast<uint16_t>(x[i] - y[i]);
  }
  std::memcpy(&a, x, sizeof a);
  return a;
}

inline simde__m512i mask_sub_epi32(
    simde__m512i src,
    simde__mmask16 k,
    simde__m512i a,
    simde__m512i b) {
  uint32_t s[16], x[16], y[16];
  simde_mm512_storeu_si512(s, src);
  simde_mm512_storeu_si512(x, a);
  simde_mm512_storeu_si512(y, b);
  for (int i = 0; i < 16; ++i) {
    if ((k >> i) & 1) {
      s[i] = x[i] - y[i];
    }
  }
  return simde_mm512_loadu_si512(s);
}

// With ACTX_AVX512_BF16 (the actx_avx512_bf16_emulated_tests executable): the
// bfloat16 conversion as the hardware does it, denormal floats flushed to zero
// (which the loops must route around), and the class test that finds them.
inline uint16_t flushed_bfloat16(float v) {
  return c10::BFloat16(
             std::fpclassify(v) == FP_SUBNORMAL ? std::copysign(0.0f, v) : v)
      .x;
}

// 16 bfloat16 of b, then 16 of a.
inline simde__m512i cvtne2ps_pbh(simde__m512 a, simde__m512 b) {
  float in[32];
  uint16_t out[32];
  simde_mm512_storeu_ps(in, b);
  simde_mm512_storeu_ps(in + 16, a);
  for (int i = 0; i < 32; ++i) {
    out[i] = flushed_bfloat16(in[i]);
  }
  return simde_mm512_loadu_si512(out);
}

inline simde__mmask16 fpclass_ps_mask(simde__m512 v, int classes) {
  EXPECT_EQ(classes, 0x20) << "only the denormal class is emulated";
  float in[16];
  simde_mm512_storeu_ps(in, v);
  simde__mmask16 bits = 0;
  for (int i = 0; i < 16; ++i) {
    if (std::fpclassify(in[i]) == FP_SUBNORMAL) {
      bits |= static_cast<simde__mmask16>(1 << i);
    }
  }
  return bits;
}

} // namespace emulated

#define _mm512_cvtph_ps emulated::cvtph_ps
#define _mm512_cvtps_ph emulated::cvtps_ph
#define _mm512_reduce_add_ps emulated::reduce_add<float>
#define _mm512_reduce_add_pd emulated::reduce_add<double>
#define _mm512_cvtepi32_epi16 emulated::cvtepi32_epi16
#define _mm512_cvtepu16_epi32 emulated::cvtepu16_epi32
#define _mm256_test_epi16_mask emulated::test_epi16_mask
#define _mm512_cvtne2ps_pbh emulated::cvtne2ps_pbh
#define _mm512_fpclass_ps_mask emulated::fpclass_ps_mask
#undef _mm512_fnmadd_ps
#define _mm512_fnmadd_ps emulated::fnmadd_ps
#undef _mm512_add_epi32
#define _mm512_add_epi32 emulated::add_epi32
#undef _mm512_mask_sub_epi32
#define _mm512_mask_sub_epi32 emulated::mask_sub_epi32
#undef _mm512_sub_epi16
#define _mm512_sub_epi16 emulated::sub_epi16<simde__m512i>
#undef _mm256_sub_epi16
#define _mm256_sub_epi16 emulated::sub_epi16<simde__m256i>
// SIMDe has the function, but its native alias is misspelled (_mm512_...).
#define _mm256_cmple_epu16_mask simde_mm256_cmple_epu16_mask

// The mask types, which SIMDe names only with its prefix.
using __mmask16 = simde__mmask16;
using __mmask8 = simde__mmask8;
#ifndef _MM_FROUND_NO_EXC
#define _MM_FROUND_NO_EXC SIMDE_MM_FROUND_NO_EXC
#endif
#ifndef _MM_FROUND_TO_NEAREST_INT
#define _MM_FROUND_TO_NEAREST_INT SIMDE_MM_FROUND_TO_NEAREST_INT
#endif

#define ACTX_EMULATED_AVX512
#include "cpu/vec_avx512.h"

namespace actx {
namespace cpu {
namespace avx512 {
#include "cpu/activation_kernel.h"
} // namespace avx512
} // namespace cpu
} // namespace actx

namespace {

using namespace actx::cpu;
using actx::Formula;
using actx::FormulaScalars;

template <class T>
T from_float(float v);
template <>
float from_float<float>(float v) {
  return v;
}
template <>
double from_float<double>(float v) {
  return v;
}
template <>
Half16 from_float<Half16>(float v) {
  return Half16{c10::Half(v).x};
}
template <>
BFloat16 from_float<BFloat16>(float v) {
  return BFloat16{c10::BFloat16(v).x};
}

template <class T>
double to_double(T v) {
  return static_cast<double>(v);
}
template <>
double to_double<Half16>(Half16 v) {
  return static_cast<float>(c10::Half(v.bits, c10::Half::from_bits()));
}
template <>
double to_double<BFloat16>(BFloat16 v) {
  return static_cast<float>(c10::BFloat16(v.bits, c10::BFloat16::from_bits()));
}

// Same bits, or both NaN.
template <class T>
bool same(T a, T b) {
  if (std::isnan(to_double(a)) || std::isnan(to_double(b))) {
    return std::isnan(to_double(a)) && std::isnan(to_double(b));
  }
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

template <class T>
std::vector<T> random_values(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal;
  const float specials[] = {
      std::numeric_limits<float>::quiet_NaN(),
      std::numeric_limits<float>::infinity(),
      -std::numeric_limits<float>::infinity(),
      0.0f,
      -0.0f,
      1e-40f,
      -1e-40f,
      3e38f};
  std::vector<T> v(n);
  for (int64_t i = 0; i < n; ++i) {
    v[i] = from_float<T>(i % 13 == 5 ? specials[(i / 13) % 8] : normal(rng));
  }
  return v;
}

// The loops of `formula` under the emulated AVX-512 intrinsics against the
// scalar ones: the same outputs and bits, and the parameter's gradient sums
// equal to summation order. `saturation`: the formula's second bit too.
template <class T>
void check_formula(
    Formula formula,
    const FormulaScalars& scalars,
    bool saturation,
    const char* name) {
  using C = compute_t<T>;
  const Kernels<T>& emulated = kernels_for<T>(*avx512::kernel_table(), formula);
  const Kernels<T>& reference =
      kernels_for<T>(*scalar::kernel_table(), formula);
  std::mt19937 rng(0);
  // (channels, inner): one parameter; per-element parameters (inner 1, rows of
  // odd and even lengths); runs of one parameter shorter and longer than a
  // vector.
  const std::pair<int64_t, int64_t> geometries[] = {
      {1, 1000}, {37, 1}, {64, 1}, {5, 3}, {7, 40}, {3, 129}};
  // Plain locals, not structured bindings: clang 14 refuses lambdas that
  // capture those.
  for (const auto& geometry : geometries) {
    const int64_t channels = geometry.first;
    const int64_t inner = geometry.second;
    const int64_t n = channels * inner * 3 + 11;
    const auto x = random_values<T>(n, rng);
    const auto g = random_values<T>(n, rng);
    std::vector<C> w(channels);
    for (int64_t c = 0; c < channels; ++c) {
      w[c] = static_cast<C>(0.5 - 0.1 * static_cast<double>(c % 11));
    }
    if (channels > 3) {
      w[3] = std::numeric_limits<C>::quiet_NaN();
    }
    for (const auto& range :
         {std::pair<int64_t, int64_t>{0, n}, {5, n - 7}, {1, 2}}) {
      const int64_t begin = range.first;
      const int64_t end = range.second;
      const Span span{channels, inner, begin, end};
      std::vector<T> out_e(n, from_float<T>(7.0f)),
          out_r(n, from_float<T>(7.0f));
      emulated.forward(x.data(), w.data(), out_e.data(), scalars, span);
      reference.forward(x.data(), w.data(), out_r.data(), scalars, span);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_TRUE(same(out_e[i], out_r[i]))
            << name << " forward, element " << i << " of span " << begin << ".."
            << end << " (channels " << channels << ", inner " << inner << ")";
      }
      std::vector<C> gw_e(channels, 0), gw_r(channels, 0),
          magnitude(channels, 0);
      emulated.backward(
          g.data(),
          x.data(),
          w.data(),
          out_e.data(),
          gw_e.data(),
          scalars,
          span);
      reference.backward(
          g.data(),
          x.data(),
          w.data(),
          out_r.data(),
          gw_r.data(),
          scalars,
          span);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_TRUE(same(out_e[i], out_r[i]))
            << name << " grad_input, element " << i;
      }
      for (int64_t i = begin; i < end; ++i) {
        // A NaN or infinite term makes both sums NaN or infinite, unless the
        // kernels give it no gradient (a clamped NaN): it sets no tolerance.
        const double term = std::abs(to_double(x[i]) * to_double(g[i])) +
            std::abs(to_double(g[i]));
        if (std::isfinite(term)) {
          magnitude[(i / inner) % channels] += term;
        }
      }
      // Gradient sums: NaN where the other has NaN, else equal to summation
      // order.
      auto expect_sums_close = [&](const std::vector<C>& e,
                                   const std::vector<C>& r,
                                   const char* what) {
        for (size_t c = 0; c < e.size(); ++c) {
          const double a = e[c], b = r[c];
          if (std::isnan(a) || std::isnan(b) || std::isinf(a) ||
              std::isinf(b)) {
            EXPECT_EQ(std::isnan(a), std::isnan(b)) << what << " " << c;
          } else {
            EXPECT_LE(std::abs(a - b), 1e-5 * magnitude[c] + 1e-30)
                << what << " " << c;
          }
        }
      };
      expect_sums_close(gw_e, gw_r, name);
      // Kernels with bits: the same bits, outputs and verdict, bit i as
      // bit_of(i) where given, and the backward from them the same grad_input
      // and gradient sums. The backward reads the forward's output
      // (from_output: parity bits) or x standing for it (masks).
      const Span whole{channels, inner, 0, n};
      auto check_bits = [&](auto forward,
                            auto backward,
                            const std::vector<C>& weights,
                            auto bit_of,
                            bool from_output,
                            const char* what) {
        std::vector<uint8_t> bits_e((n + 7) / 8, 0xAA),
            bits_r((n + 7) / 8, 0x55), sat_e((n + 7) / 8, 0xAA),
            sat_r((n + 7) / 8, 0x55);
        std::vector<T> y_e(n), y_r(n);
        const bool ok_e = forward(
            true,
            weights.data(),
            y_e.data(),
            bits_e.data(),
            sat_e.data(),
            whole);
        const bool ok_r = forward(
            false,
            weights.data(),
            y_r.data(),
            bits_r.data(),
            sat_r.data(),
            whole);
        EXPECT_EQ(ok_e, ok_r) << what;
        ASSERT_EQ(bits_e, bits_r) << what;
        if (saturation) {
          ASSERT_EQ(sat_e, sat_r) << what << " saturation";
        }
        for (int64_t i = 0; i < n; ++i) {
          ASSERT_TRUE(same(y_e[i], y_r[i]))
              << "forward with " << what << ", element " << i;
          ASSERT_EQ((bits_r[i / 8] >> (i % 8)) & 1, bit_of(i))
              << what << " bit " << i;
        }
        std::vector<C> gb_e(channels, 0), gb_r(channels, 0);
        backward(
            true,
            bits_e.data(),
            sat_e.data(),
            from_output ? y_e.data() : x.data(),
            weights.data(),
            out_e.data(),
            gb_e.data(),
            span);
        backward(
            false,
            bits_r.data(),
            sat_r.data(),
            from_output ? y_r.data() : x.data(),
            weights.data(),
            out_r.data(),
            gb_r.data(),
            span);
        for (int64_t i = begin; i < end; ++i) {
          ASSERT_TRUE(same(out_e[i], out_r[i]))
              << "grad_input from the " << what << ", element " << i;
        }
        expect_sums_close(gb_e, gb_r, what);
      };
      auto sign_forward = [&](bool emulate,
                              const C* weights,
                              T* y,
                              uint8_t* bits,
                              uint8_t* sat,
                              Span s) {
        (emulate ? emulated : reference)
            .forward_with_bits(
                x.data(),
                weights,
                y,
                bits,
                saturation ? sat : nullptr,
                scalars,
                s);
        return true;
      };
      auto sign_backward = [&](bool emulate,
                               const uint8_t* bits,
                               const uint8_t* sat,
                               const T* y,
                               const C* weights,
                               T* gx,
                               C* gp,
                               Span s) {
        (emulate ? emulated : reference)
            .backward_from_bits(
                g.data(),
                bits,
                saturation ? sat : nullptr,
                y,
                weights,
                gx,
                gp,
                scalars,
                s);
      };
      // The sign bit is x > 0 for prelu; for other formulas the scalar loops
      // are the reference (the Python tests check them against torch).
      const auto& bits_reference = reference;
      check_bits(
          sign_forward,
          sign_backward,
          w,
          [&](int64_t i) -> uint32_t {
            if (formula == Formula::kPrelu) {
              return to_double(x[i]) > 0 ? 1u : 0u;
            }
            std::vector<uint8_t> one(1);
            std::vector<T> y(1);
            const Span at{1, 1, 0, 1};
            const C wi = w[(i / inner) % channels];
            bits_reference.forward_with_bits(
                &x[i], &wi, y.data(), one.data(), nullptr, scalars, at);
            return one[0] & 1u;
          },
          false,
          name);
      // Parity bits (prelu), with positive weights.
      if constexpr (!std::is_same_v<T, double>) {
        if (formula == Formula::kPrelu) {
          std::vector<C> wp(channels);
          for (int64_t c = 0; c < channels; ++c) {
            wp[c] = static_cast<C>(0.3 + 0.07 * static_cast<double>(c % 5));
          }
          const ParityKernels<T>& pe =
              *parity_kernels_for<T>(*avx512::kernel_table());
          const ParityKernels<T>& pr =
              *parity_kernels_for<T>(*scalar::kernel_table());
          std::vector<uint16_t> start(channels);
          std::vector<uint16_t> span(channels);
          if constexpr (kRecoverByReciprocal<T>) {
            fill_parity_x_ranges<T>(
                wp.data(), channels, start.data(), span.data());
          }
          const ParityXRanges ranges{start.data(), span.data()};
          check_bits(
              [&](bool emulate,
                  const C* weights,
                  T* y,
                  uint8_t* bits,
                  uint8_t*,
                  Span s) {
                return (emulate ? pe : pr)
                    .forward(x.data(), weights, ranges, y, bits, s);
              },
              [&](bool emulate,
                  const uint8_t* bits,
                  const uint8_t*,
                  const T* y,
                  const C* weights,
                  T* gx,
                  C* gp,
                  Span s) {
                (emulate ? pe : pr)
                    .backward(g.data(), bits, y, weights, gx, gp, s);
              },
              wp,
              [&](int64_t i) { return low_bit(x[i]); },
              true,
              "parity bits");
        }
      }
    }
  }
}

template <class T>
void check_against_scalar() {
  check_formula<T>(Formula::kPrelu, FormulaScalars{}, false, "prelu");
  // bias_leaky_relu: alpha 0.2, gain sqrt(2), with and without a clamp (the
  // random values reach past 3, and the specials past any clamp).
  check_formula<T>(
      Formula::kBiasLeakyRelu,
      FormulaScalars{{0.2, 1.4142135623730951, -1.0}},
      false,
      "bias_leaky_relu");
  check_formula<T>(
      Formula::kBiasLeakyRelu,
      FormulaScalars{{-0.3, 1.5, 2.0}},
      true,
      "bias_leaky_relu with clamp");
}

TEST(Avx512Emulated, Float32MatchesScalar) {
  check_against_scalar<float>();
}
TEST(Avx512Emulated, Float64MatchesScalar) {
  check_against_scalar<double>();
}
TEST(Avx512Emulated, Float16MatchesScalar) {
  check_against_scalar<Half16>();
}
TEST(Avx512Emulated, BFloat16MatchesScalar) {
  check_against_scalar<BFloat16>();
}

} // namespace
