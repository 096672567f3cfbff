// The CPU backend: dtype dispatch, threading, and the fixed-order reduction of
// the prelu weight gradient. The element loops themselves are in
// activation_kernel.h, one build per instruction set.

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "cpu/capability.h"
#include "operators.h"

namespace actx {
namespace cpu {
namespace {

template <class scalar_t>
struct StorageOf {
  using type = scalar_t;
};
template <>
struct StorageOf<c10::Half> {
  using type = Half16;
};
template <>
struct StorageOf<c10::BFloat16> {
  using type = BFloat16;
};

// Elements per task of the elementwise loops (ATen's grain size).
constexpr int64_t kGrain = 32768;
// Runs of one weight shorter than this are slow in the broadcast loop...
constexpr int64_t kMinRun = 64;
// ...so they become per-element weights, a pattern repeated to at least this
// length and to a multiple of kLanesMax, so that its runs end on whole vectors
// at every level. In the plain loops longer patterns cost more than their runs
// save: their weights are loaded along with the data (docs/benchmarks.md).
// (ParityKernels' forward asks for kMinParityPeriod: kernel_table.h.)
constexpr int64_t kMinPeriod = 64;
constexpr int64_t kLanesMax = 32;
// The most per-element weights built that way.
constexpr int64_t kMaxExpandedWeights = int64_t{1} << 20;
// The most partial sums of the weight gradient held at once (chunks x period).
constexpr int64_t kMaxPartials = int64_t{1} << 24;

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// The weights as the loops read them, with what it takes to fold a gradient
// back to channels.
template <class acc_t>
struct LoopWeights {
  const acc_t* data = nullptr;
  int64_t channels = 1;
  int64_t inner = 1;
  bool expanded =
      false; // short runs became per-element weights (see prepare_weights)
  std::vector<acc_t> owned; // owns `data` when the weights were rewritten
  acc_t slope = 0;          // owns `data` for leaky_relu
};

// Every NaN slope becomes the default quiet NaN: the products are NaN all the
// same, and the bfloat16 rounding of the vector loops relies on NaNs with zero
// low bits (vec_avx2.h).
template <class acc_t>
acc_t canonical(acc_t w) {
  return std::isnan(w) ? std::numeric_limits<acc_t>::quiet_NaN() : w;
}

// The weights of the call as the compute type: a float16/bfloat16 weight
// converted on the way.
template <class scalar_t, class acc_t>
const acc_t* weights_as_compute_type(
    const Params& params,
    const at::Tensor& x,
    std::vector<acc_t>& converted) {
  if (holds_compute_type(params.per_channel, x)) {
    return params.per_channel.const_data_ptr<acc_t>();
  }
  const scalar_t* w = params.per_channel.const_data_ptr<scalar_t>();
  converted.assign(w, w + params.channels);
  return converted.data();
}

// How many times prepare_weights repeats the pattern of `period` = channels *
// inner weights, to at least min_period elements and a multiple of kLanesMax;
// 0 where runs are long enough as they are.
int64_t pattern_repeat(int64_t channels, int64_t inner, int64_t min_period) {
  const int64_t period = channels * inner;
  const bool short_runs = inner > 1 ? inner < kMinRun : channels < min_period;
  if (!short_runs || period > kMaxExpandedWeights) {
    return 0;
  }
  const int64_t step = kLanesMax / std::gcd(period, kLanesMax);
  return ceil_div(std::max<int64_t>(1, ceil_div(min_period, period)), step) *
      step;
}

// x: a tensor of the call's input dtype. Short runs of weights become a
// pattern of at least min_period per-element weights.
template <class scalar_t, class acc_t>
void prepare_weights(
    const Params& params,
    const at::Tensor& x,
    int64_t min_period,
    LoopWeights<acc_t>& lw) {
  if (!params.per_channel.defined()) {
    lw.slope = canonical(params.scalar.to<acc_t>());
    lw.data = &lw.slope;
    lw.channels = 1;
    lw.inner = params.inner;
    return;
  }
  const acc_t* w = weights_as_compute_type<scalar_t>(params, x, lw.owned);
  const int64_t channels = params.channels;
  const int64_t inner = params.inner;
  const int64_t period = channels * inner;
  int64_t repeat = pattern_repeat(channels, inner, min_period);
  if (min_period > kMinPeriod && period * repeat > 2 * min_period) {
    // Channel counts with few factors of two make long patterns, whose loads
    // cost more than their runs save: the plain loops' pattern instead.
    repeat = pattern_repeat(channels, inner, kMinPeriod);
  }
  lw.expanded = repeat > 0;
  if (lw.expanded) {
    // Element i uses w[(i / inner) % channels] == expanded[i % (period *
    // repeat)].
    std::vector<acc_t> expanded(period * repeat);
    for (size_t j = 0; j < expanded.size(); ++j) {
      expanded[j] = canonical(w[(static_cast<int64_t>(j) / inner) % channels]);
    }
    lw.owned = std::move(expanded);
    lw.data = lw.owned.data();
    lw.channels = static_cast<int64_t>(lw.owned.size());
    lw.inner = 1;
    return;
  }
  lw.channels = channels;
  lw.inner = inner;
  if (std::any_of(w, w + channels, [](acc_t v) { return std::isnan(v); })) {
    if (w != lw.owned.data()) {
      lw.owned.assign(w, w + channels);
    }
    for (acc_t& v : lw.owned) {
      v = canonical(v);
    }
    w = lw.owned.data();
  }
  lw.data = w;
}

// The ParityXRange of each of the call's weights `w` (one per channel), laid
// out as lw lays out the weights (expanded or not).
template <class T, class acc_t>
void parity_x_ranges(
    const Params& params,
    const acc_t* w,
    const LoopWeights<acc_t>& lw,
    std::vector<uint16_t>& start,
    std::vector<uint16_t>& span) {
  const int64_t channels = params.channels;
  std::vector<uint16_t> channel_start(channels);
  std::vector<uint16_t> channel_span(channels);
  fill_parity_x_ranges<T>(
      w, channels, channel_start.data(), channel_span.data());
  start.resize(lw.channels);
  span.resize(lw.channels);
  for (int64_t j = 0; j < lw.channels; ++j) {
    const int64_t c = lw.expanded ? (j / params.inner) % channels : j;
    start[j] = channel_start[c];
    span[j] = channel_span[c];
  }
}

// Writes the weight gradient (one value per channel) into call.grad_param, in
// its dtype.
template <class scalar_t, class acc_t>
void store_weight_grad(
    const BackwardCall& call,
    const std::vector<acc_t>& values) {
  if (holds_compute_type(call.grad_param, call.grad_input)) {
    std::copy(values.begin(), values.end(), call.grad_param.data_ptr<acc_t>());
  } else {
    std::transform(
        values.begin(),
        values.end(),
        call.grad_param.data_ptr<scalar_t>(),
        [](acc_t v) { return static_cast<scalar_t>(v); });
  }
}

struct CpuBackend {
  static constexpr bool kBitKernels = true;

  static void forward(const ForwardCall& call) {
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::kHalf,
        at::kBFloat16,
        call.x.scalar_type(),
        "actx_cpu_forward",
        [&] {
          using T = typename StorageOf<scalar_t>::type;
          using acc_t = compute_t<T>;
          LoopWeights<acc_t> lw;
          prepare_weights<scalar_t>(
              call.params,
              call.x,
              call.bits == Bits::kParity ? kMinParityPeriod : kMinPeriod,
              lw);
          const auto* x =
              reinterpret_cast<const T*>(call.x.const_data_ptr<scalar_t>());
          auto* out = reinterpret_cast<T*>(call.y.data_ptr<scalar_t>());
          const int64_t n = call.y.numel();
          const Kernels<T>& kernels =
              kernels_for<T>(active_kernels(), call.formula);
          if (call.bits == Bits::kNone) {
            at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
              kernels.forward(
                  x,
                  lw.data,
                  out,
                  call.scalars,
                  Span{lw.channels, lw.inner, begin, end});
            });
            return;
          }
          // The loop writes the bits from the element it holds anyway; chunks
          // start on whole bytes.
          uint8_t* bits = call.bits_out.data_ptr<uint8_t>();
          uint8_t* saturation = call.saturation_out.defined()
              ? call.saturation_out.data_ptr<uint8_t>()
              : nullptr;
          const ParityKernels<T>* parity = call.bits == Bits::kParity
              ? parity_kernels_for<T>(active_kernels())
              : nullptr;
          TORCH_INTERNAL_ASSERT(
              call.bits != Bits::kParity || parity != nullptr,
              "no parity kernels for float64");
          // The call's own weights: lw may hold them expanded many times.
          std::vector<acc_t> converted;
          const acc_t* w = parity == nullptr
              ? nullptr
              : weights_as_compute_type<scalar_t>(
                    call.params, call.x, converted);
          std::vector<uint16_t> range_start;
          std::vector<uint16_t> range_span;
          if constexpr (kRecoverByReciprocal<T>) {
            if (parity != nullptr) {
              parity_x_ranges<T>(call.params, w, lw, range_start, range_span);
            }
          }
          const ParityXRanges ranges{range_start.data(), range_span.data()};
          std::atomic<bool> recoverable{true};
          at::parallel_for(
              0, ceil_div(n, 8), kGrain / 8, [&](int64_t first, int64_t last) {
                const Span span{
                    lw.channels, lw.inner, first * 8, std::min(n, last * 8)};
                if (parity == nullptr) {
                  kernels.forward_with_bits(
                      x, lw.data, out, bits, saturation, call.scalars, span);
                } else if (!parity->forward(
                               x, lw.data, ranges, out, bits, span)) {
                  recoverable = false;
                }
              });
          if (parity != nullptr) {
            // The kernels' check presumes weights > 0 (y > 0 then stands for
            // x > 0, and a NaN quotient for a NaN x) and, for the 16-bit
            // types, a normal reciprocal (parity_weight_supported).
            const bool weights_supported = std::all_of(
                w, w + call.params.channels, parity_weight_supported<T>);
            call.recoverable.fill_(weights_supported && recoverable.load());
          }
        });
  }

  static void backward(const BackwardCall& call) {
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::kHalf,
        at::kBFloat16,
        call.grad_output.scalar_type(),
        "actx_cpu_backward",
        [&] {
          using T = typename StorageOf<scalar_t>::type;
          using acc_t = compute_t<T>;
          LoopWeights<acc_t> lw;
          prepare_weights<scalar_t>(
              call.params, call.grad_output, kMinPeriod, lw);
          auto data = [](const at::Tensor& t) {
            return t.defined()
                ? reinterpret_cast<const T*>(t.const_data_ptr<scalar_t>())
                : nullptr;
          };
          auto bit_data = [](const at::Tensor& t) {
            return t.defined() ? t.const_data_ptr<uint8_t>() : nullptr;
          };
          const T* g = data(call.grad_output);
          auto* gx = reinterpret_cast<T*>(call.grad_input.data_ptr<scalar_t>());
          const uint8_t* bits = bit_data(call.bits);
          const uint8_t* saturation = bit_data(call.saturation);
          const Kernels<T>& kernels =
              kernels_for<T>(active_kernels(), call.formula);
          const ParityKernels<T>* parity = call.source == Bits::kParity
              ? parity_kernels_for<T>(active_kernels())
              : nullptr;
          // From bits, the prelu output stands in for x (the mask) or gives it
          // back (parity bits).
          const T* x = data(call.source == Bits::kNone ? call.x : call.y);
          auto run = [&](acc_t* gp, Span span) {
            switch (call.source) {
              case Bits::kNone:
                kernels.backward(g, x, lw.data, gx, gp, call.scalars, span);
                break;
              case Bits::kSign:
                kernels.backward_from_bits(
                    g,
                    bits,
                    saturation,
                    x,
                    lw.data,
                    gx,
                    gp,
                    call.scalars,
                    span);
                break;
              case Bits::kParity:
                parity->backward(g, bits, x, lw.data, gx, gp, span);
                break;
            }
          };
          const int64_t n = call.grad_input.numel();
          if (!call.grad_param.defined()) {
            at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
              run(nullptr, Span{lw.channels, lw.inner, begin, end});
            });
            return;
          }
          // One pass computes grad_input and per-chunk partial sums of the
          // parameter's gradient. Chunks depend on the sizes alone, and
          // partials are added in chunk order, so the result is the same bits
          // for every thread count.
          const int64_t period = lw.channels;
          int64_t chunk = std::max(kGrain, ceil_div(n, 256));
          if (ceil_div(n, chunk) * period > kMaxPartials) {
            chunk = ceil_div(n, std::max<int64_t>(1, kMaxPartials / period));
          }
          const int64_t chunks = ceil_div(n, chunk);
          std::vector<acc_t> partials(
              static_cast<size_t>(chunks * period), acc_t(0));
          at::parallel_for(0, chunks, 1, [&](int64_t first, int64_t last) {
            for (int64_t k = first; k < last; ++k) {
              run(partials.data() + k * period,
                  Span{
                      lw.channels,
                      lw.inner,
                      k * chunk,
                      std::min(n, (k + 1) * chunk)});
            }
          });
          const int64_t channels = call.params.channels;
          const int64_t inner = call.params.inner;
          std::vector<acc_t> grad_param(
              static_cast<size_t>(channels), acc_t(0));
          // Where prelu's output stood in for x (a sign mask), the sums are of
          // grad * y = weight * (grad * x): each channel's is divided by its
          // weight, in double.
          const bool of_output = call.source == Bits::kSign && call.y.defined();
          std::vector<double> of_result(
              of_output ? static_cast<size_t>(channels) : 0, 0.0);
          // Each parameter's partials added in chunk order, chunk by chunk so
          // that the reads run along memory (period can be thousands).
          std::vector<double> sums(static_cast<size_t>(period), 0.0);
          for (int64_t k = 0; k < chunks; ++k) {
            const acc_t* part = partials.data() + k * period;
            for (int64_t j = 0; j < period; ++j) {
              sums[j] += part[j];
            }
          }
          for (int64_t j = 0; j < period; ++j) {
            const double sum = sums[j];
            // Expanded parameters fold back onto their channel.
            const int64_t channel = lw.expanded ? (j / inner) % channels : j;
            if (of_output) {
              of_result[channel] += sum;
            } else {
              grad_param[channel] += static_cast<acc_t>(sum);
            }
          }
          if (of_output) {
            std::vector<acc_t> converted;
            const acc_t* w = weights_as_compute_type<scalar_t>(
                call.params, call.grad_output, converted);
            for (int64_t c = 0; c < channels; ++c) {
              grad_param[c] =
                  static_cast<acc_t>(of_result[c] / static_cast<double>(w[c]));
            }
          }
          store_weight_grad<scalar_t>(call, grad_param);
        });
  }
};

} // namespace
} // namespace cpu
} // namespace actx

TORCH_LIBRARY_IMPL(actx, CPU, m) {
  actx::register_operators<actx::cpu::CpuBackend>(m);
}
