// Google Benchmark of the raw CPU element loops (no dispatcher, no allocation,
// no threads), for tuning: each instruction set the CPU has, each dtype,
// forward and prelu backward, against memcpy of the same bytes, at sizes that
// live in L2, in L3 and in memory.
//
//   cmake --build build/cmake --target actx_kernels_bench &&
//   build/cmake/actx_kernels_bench
//
// Bytes per second count what a loop must move (forward: x in, out; backward:
// grad and x in, grad_input out), so a loop at the copy's rate is at the memory
// roofline.

#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/kernel_table.h"
#include "cpu/x86_features.h"

namespace {

using actx::cpu::BFloat16;
using actx::cpu::compute_t;
using actx::cpu::Half16;
using actx::cpu::KernelTable;
using actx::cpu::Span;

bool cpu_supports(const std::string& level) {
  const actx::cpu::X86Features features = actx::cpu::read_x86_features();
  if (level == "avx2") {
    return features.avx2_fma_f16c;
  }
  if (level == "avx512") {
    return features.avx512_f_bw_vl_dq;
  }
  if (level == "avx512_bf16") {
    return features.avx512_bf16;
  }
  return true;
}

// Values of both signs for every storage type (the bits of small floats for the
// half types).
template <class T>
std::vector<T> random_values(int64_t n) {
  std::mt19937 rng(0);
  std::normal_distribution<float> normal;
  std::vector<T> v(n);
  for (auto& e : v) {
    const float f = normal(rng);
    if constexpr (std::is_same_v<T, Half16> || std::is_same_v<T, BFloat16>) {
      uint32_t bits;
      std::memcpy(&bits, &f, sizeof bits);
      e.bits = static_cast<uint16_t>(
          bits >> 16); // a bfloat16; as a float16, some number
    } else {
      e = static_cast<T>(f);
    }
  }
  return v;
}

constexpr int64_t kChannels = 64;

// NCHW-like: runs of n / 64 elements share a weight; channels_last-like
// (range(1) == 1): element i uses weight i % 64.
Span span_of(const benchmark::State& state, int64_t n) {
  return state.range(1) == 1 ? Span{kChannels, 1, 0, n}
                             : Span{kChannels, n / kChannels, 0, n};
}

// The forward with parity bits as the operator runs it: channels_last's 64
// weights repeated to a pattern of kMinParityPeriod (activation_cpu.cpp).
Span parity_span_of(const benchmark::State& state, int64_t n) {
  return state.range(1) == 1 ? Span{actx::cpu::kMinParityPeriod, 1, 0, n}
                             : span_of(state, n);
}

template <class T>
void forward(benchmark::State& state, const KernelTable* table) {
  const int64_t n = state.range(0) / sizeof(T);
  const auto x = random_values<T>(n);
  std::vector<T> out(n);
  const std::vector<compute_t<T>> w(kChannels, compute_t<T>(0.25));
  const Span span = span_of(state, n);
  for (auto _ : state) {
    actx::cpu::kernels_for<T>(*table, actx::Formula::kPrelu)
        .forward(x.data(), w.data(), out.data(), actx::FormulaScalars{}, span);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 2 * n * int64_t(sizeof(T)));
}

template <class T>
void prelu_backward(benchmark::State& state, const KernelTable* table) {
  const int64_t n = state.range(0) / sizeof(T);
  const auto x = random_values<T>(n);
  const auto g = random_values<T>(n);
  std::vector<T> gx(n);
  const std::vector<compute_t<T>> w(kChannels, compute_t<T>(0.25));
  std::vector<compute_t<T>> gw(kChannels);
  const Span span = span_of(state, n);
  for (auto _ : state) {
    actx::cpu::kernels_for<T>(*table, actx::Formula::kPrelu)
        .backward(
            g.data(),
            x.data(),
            w.data(),
            gx.data(),
            gw.data(),
            actx::FormulaScalars{},
            span);
    benchmark::DoNotOptimize(gx.data());
    benchmark::DoNotOptimize(gw.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 3 * n * int64_t(sizeof(T)));
}

// prelu's forward with parity bits (the forward of a training step) on n
// elements: its input, weights and the 16-bit types' ranges of x, and what it
// writes.
template <class T>
struct ParityForward {
  const KernelTable* table;
  Span span;
  std::vector<T> x;
  std::vector<compute_t<T>> w;
  std::vector<uint16_t> start;
  std::vector<uint16_t> range_span;
  std::vector<T> out;
  std::vector<uint8_t> parity;

  ParityForward(const benchmark::State& state, const KernelTable* t, int64_t n)
      : table(t),
        span(parity_span_of(state, n)),
        x(random_values<T>(n)),
        w(span.channels, compute_t<T>(0.25)),
        start(span.channels),
        range_span(span.channels),
        out(n),
        parity((n + 7) / 8) {
    if constexpr (actx::cpu::kRecoverByReciprocal<T>) {
      actx::cpu::fill_parity_x_ranges<T>(
          w.data(), span.channels, start.data(), range_span.data());
    }
  }
  bool run() {
    return actx::cpu::parity_kernels_for<T>(*table)->forward(
        x.data(),
        w.data(),
        {start.data(), range_span.data()},
        out.data(),
        parity.data(),
        span);
  }
};

template <class T>
void prelu_forward_with_parity(
    benchmark::State& state,
    const KernelTable* table) {
  const int64_t n = state.range(0) / sizeof(T);
  ParityForward<T> f(state, table, n);
  for (auto _ : state) {
    const bool recovered = f.run();
    benchmark::DoNotOptimize(recovered);
    benchmark::DoNotOptimize(f.out.data());
    benchmark::DoNotOptimize(f.parity.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 2 * n * int64_t(sizeof(T)));
}

// Its backward, with x recovered from the output and the parity bits, over
// 64 channels' weights as the operator's backward reads them (the pattern of
// the other loops).
template <class T>
void prelu_backward_from_parity(
    benchmark::State& state,
    const KernelTable* table) {
  const int64_t n = state.range(0) / sizeof(T);
  ParityForward<T> f(state, table, n);
  f.run();
  const auto g = random_values<T>(n);
  std::vector<T> gx(n);
  std::vector<compute_t<T>> gw(kChannels);
  for (auto _ : state) {
    actx::cpu::parity_kernels_for<T>(*table)->backward(
        g.data(),
        f.parity.data(),
        f.out.data(),
        f.w.data(), // the first 64 of the forward's equal weights
        gx.data(),
        gw.data(),
        span_of(state, n));
    benchmark::DoNotOptimize(gx.data());
    benchmark::DoNotOptimize(gw.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 3 * n * int64_t(sizeof(T)));
}

void copy(benchmark::State& state) {
  const int64_t bytes = state.range(0);
  const std::vector<char> src(bytes, 1);
  std::vector<char> dst(bytes);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), bytes);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 2 * bytes);
}

// Bytes per tensor: in L1, in L2, in L3, in memory.
const std::vector<int64_t> kSizes = {8 << 10, 256 << 10, 8 << 20, 64 << 20};

template <class T>
void register_dtype(
    const char* level,
    const KernelTable* table,
    const char* dtype) {
  for (const int64_t layout : {0, 1}) {
    const std::string name = std::string(level) + "/" + dtype +
        (layout ? "/channels_last" : "/nchw");
    for (const int64_t bytes : kSizes) {
      benchmark::RegisterBenchmark(
          (name + "/forward").c_str(), forward<T>, table)
          ->Args({bytes, layout});
      benchmark::RegisterBenchmark(
          (name + "/prelu_backward").c_str(), prelu_backward<T>, table)
          ->Args({bytes, layout});
      benchmark::RegisterBenchmark(
          (name + "/prelu_forward_with_parity").c_str(),
          prelu_forward_with_parity<T>,
          table)
          ->Args({bytes, layout});
      benchmark::RegisterBenchmark(
          (name + "/prelu_backward_from_parity").c_str(),
          prelu_backward_from_parity<T>,
          table)
          ->Args({bytes, layout});
    }
  }
}

} // namespace

int main(int argc, char** argv) {
  for (const int64_t bytes : kSizes) {
    benchmark::RegisterBenchmark("memcpy", copy)->Args({bytes, 0});
  }
  const std::pair<const char*, const KernelTable*> levels[] = {
      {"scalar", actx::cpu::scalar::kernel_table()},
      {"avx2", actx::cpu::avx2::kernel_table()},
      {"avx512", actx::cpu::avx512::kernel_table()},
      {"avx512_bf16", actx::cpu::avx512_bf16::kernel_table()}};
  for (const auto& [level, table] : levels) {
    if (table == nullptr || !cpu_supports(level)) {
      continue;
    }
    register_dtype<float>(level, table, "float32");
    register_dtype<BFloat16>(level, table, "bfloat16");
    register_dtype<Half16>(level, table, "float16");
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
