// The operators called from C++ through the dispatcher, with autograd, against
// ATen's built-ins.

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/forward_grad.h>
#include <torch/torch.h>

#include "actx/actx.h"

namespace {

at::Tensor sample(at::IntArrayRef shape, at::ScalarType dtype = at::kFloat) {
  return at::randn(shape, at::TensorOptions().dtype(dtype));
}

// Bit for bit (-0.0 and infinities included), NaN where the reference has NaN.
void expect_same_values(const at::Tensor& actual, const at::Tensor& expected) {
  ASSERT_EQ(actual.sizes(), expected.sizes());
  ASSERT_EQ(actual.scalar_type(), expected.scalar_type());
  const auto a = actual.contiguous();
  const auto e = expected.contiguous();
  EXPECT_TRUE(at::equal(a.isnan(), e.isnan()));
  const auto mask = a.isnan().logical_not();
  const auto int_type = a.element_size() == 8 ? at::kLong
      : a.element_size() == 4                 ? at::kInt
                                              : at::kShort;
  EXPECT_TRUE(at::equal(
      a.view(int_type).masked_select(mask),
      e.view(int_type).masked_select(mask)));
}

std::string error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "";
}

class CapabilityTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    saved_ = actx::cpu_capability();
    try {
      actx::set_cpu_capability(GetParam());
    } catch (const c10::Error&) {
      GTEST_SKIP() << "this CPU does not support " << GetParam();
    }
  }
  void TearDown() override {
    actx::set_cpu_capability(saved_);
  }
  std::string saved_;
};

TEST_P(CapabilityTest, ForwardMatchesAtenForEveryDtypeAndLayout) {
  at::manual_seed(0);
  for (auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
    auto x = sample({2, 3, 9, 7}, dtype);
    x.view(-1).index_put_({0}, std::numeric_limits<float>::quiet_NaN());
    x.view(-1).index_put_({1}, -0.0);
    x.view(-1).index_put_({2}, -std::numeric_limits<float>::infinity());
    const auto w = at::rand({3}, x.options());
    for (const auto& input :
         {x, x.contiguous(at::MemoryFormat::ChannelsLast), x.transpose(1, 3)}) {
      expect_same_values(
          actx::leaky_relu(input, 0.2), at::leaky_relu(input, 0.2));
      if (input.size(1) == 3) {
        expect_same_values(actx::prelu(input, w), at::prelu(input, w));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllLevels,
    CapabilityTest,
    ::testing::Values("scalar", "avx2", "avx512", "zen4"));

TEST(Actx, DefaultArgumentIsTorchs) {
  const auto x = sample({64});
  expect_same_values(actx::leaky_relu(x), at::leaky_relu(x));
}

TEST(Actx, AutogradGivesTorchsGradients) {
  at::manual_seed(1);
  const auto x0 = sample({4, 5, 6}, at::kDouble);
  const auto w0 = at::rand({5}, x0.options());
  auto x1 = x0.clone().requires_grad_();
  auto w1 = w0.clone().requires_grad_();
  auto x2 = x0.clone().requires_grad_();
  auto w2 = w0.clone().requires_grad_();
  actx::prelu(actx::leaky_relu(x1, 0.1), w1).pow(2).sum().backward();
  at::prelu(at::leaky_relu(x2, 0.1), w2).pow(2).sum().backward();
  EXPECT_TRUE(at::allclose(x1.grad(), x2.grad()));
  EXPECT_TRUE(at::allclose(w1.grad(), w2.grad()));
}

TEST(Actx, DoubleBackwardMatchesTorch) {
  at::manual_seed(2);
  const auto x0 = sample({3, 4, 5}, at::kDouble);
  const auto w0 = at::rand({4}, x0.options());
  std::vector<at::Tensor> results;
  for (bool use_actx : {true, false}) {
    auto x = x0.clone().requires_grad_();
    auto w = w0.clone().requires_grad_();
    const auto y = use_actx ? actx::prelu(x, w) : at::prelu(x, w);
    auto grads = torch::autograd::grad({(y * y).sum()}, {x, w}, {}, true, true);
    auto second = torch::autograd::grad(
        {grads[0].sin().sum() + grads[1].cos().sum()}, {x, w});
    results.insert(results.end(), second.begin(), second.end());
  }
  EXPECT_TRUE(at::allclose(results[0], results[2]));
  EXPECT_TRUE(at::allclose(results[1], results[3]));
}

// Forward-mode AD from C++ (what torch.autograd.forward_ad does in Python):
// dual tensors through actx give ATen's tangents, bit for bit.
TEST(Actx, ForwardModeTangentsMatchTorch) {
  at::manual_seed(3);
  const auto x = sample({3, 4, 5}, at::kDouble);
  const auto x_tangent = sample({3, 4, 5}, at::kDouble);
  const auto w = at::rand({4}, x.options());
  const auto w_tangent = sample({4}, at::kDouble);
  const uint64_t level = torch::autograd::ForwardADLevel::get_next_idx();
  std::vector<at::Tensor> tangents;
  for (bool use_actx : {true, false}) {
    const auto xd = at::_make_dual(x, x_tangent, static_cast<int64_t>(level));
    const auto wd = at::_make_dual(w, w_tangent, static_cast<int64_t>(level));
    const auto y = use_actx ? actx::prelu(actx::leaky_relu(xd, 0.1), wd)
                            : at::prelu(at::leaky_relu(xd, 0.1), wd);
    const auto tangent =
        std::get<1>(at::_unpack_dual(y, static_cast<int64_t>(level)));
    ASSERT_TRUE(tangent.defined());
    tangents.push_back(tangent.clone());
  }
  torch::autograd::ForwardADLevel::release_idx(level);
  expect_same_values(tangents[0], tangents[1]);
}

TEST(Actx, InplaceWritesIntoItsInput) {
  auto x = sample({3, 8});
  const auto expected = at::leaky_relu(x, 0.3);
  auto& out = actx::leaky_relu_(x, 0.3);
  EXPECT_TRUE(out.is_same(x));
  expect_same_values(x, expected);
}

TEST(Actx, InplaceUnderAutogradMatchesTorch) {
  const auto x0 = sample({10}, at::kDouble);
  auto a = x0.clone().requires_grad_();
  auto b = x0.clone().requires_grad_();
  auto ya = a * 2;
  auto yb = b * 2;
  actx::leaky_relu_(ya, 0.1);
  at::leaky_relu_(yb, 0.1);
  ya.sum().backward();
  yb.sum().backward();
  expect_same_values(a.grad(), b.grad());
}

TEST(Actx, BadInputsGiveClearErrors) {
  EXPECT_NE(
      error_message([] {
        actx::prelu(sample({2, 3, 4}), at::rand({4}));
      }).find("`weight` to have 1 element or one per channel"),
      std::string::npos);
  EXPECT_NE(
      error_message([] {
        actx::leaky_relu(at::arange(4), 0.1);
      }).find("got Long"),
      std::string::npos);
  auto expanded = sample({3, 1}).expand({3, 4});
  const auto before = expanded.clone();
  EXPECT_NE(
      error_message([&] {
        actx::leaky_relu_(expanded, 0.1);
      }).find("share memory"),
      std::string::npos);
  EXPECT_TRUE(at::equal(expanded, before));
}

TEST(Actx, BackwardOperatorsMatchAten) {
  const auto x = sample({2, 3, 4});
  const auto g = sample({2, 3, 4});
  const auto w = at::rand({3});
  expect_same_values(
      actx::leaky_relu_backward(g, x, 0.2, false),
      at::leaky_relu_backward(g, x, 0.2, false));
  const auto [gx, gw] = actx::prelu_backward(g, x, w);
  const auto [gx_ref, gw_ref] =
      at::_prelu_kernel_backward(g, x, w.reshape({1, 3, 1}));
  expect_same_values(gx, gx_ref);
  EXPECT_TRUE(at::allclose(gw, gw_ref.sum(at::IntArrayRef{0, 2}), 1e-5, 1e-6));
}

// What autograd keeps (one bit per element where it can, docs/memory.md), and
// the switch back to keeping the input: the same gradients either way.
TEST(Actx, SavedBitsAndSwitch) {
  at::manual_seed(3);
  const auto x = sample({2, 3, 5});
  const auto g = sample({2, 3, 5});
  const auto w = at::rand({3}) + 0.1;
  std::vector<at::Tensor> grads;
  for (bool masks : {true, false}) {
    const bool before = actx::set_backward_masks(masks);
    EXPECT_TRUE(before || !masks);
    auto xr = x.clone().requires_grad_();
    auto wr = w.clone().requires_grad_();
    const auto y = actx::prelu(xr, wr);
    const auto z = actx::leaky_relu(y, -0.3);
    EXPECT_EQ(
        y.grad_fn()->name(),
        masks ? "actx::PreluBackwardFromParity" : "actx::PreluBackward");
    EXPECT_EQ(
        z.grad_fn()->name(),
        masks ? "actx::LeakyReluBackwardFromMask" : "actx::LeakyReluBackward");
    auto result = torch::autograd::grad({(z * g).sum()}, {xr, wr});
    grads.insert(grads.end(), result.begin(), result.end());
  }
  EXPECT_FALSE(actx::set_backward_masks(true));
  EXPECT_TRUE(actx::backward_masks_enabled());
  expect_same_values(grads[0], grads[2]);
  EXPECT_TRUE(at::allclose(grads[1], grads[3], 1e-5, 1e-6));
  // The private operators are the library's, through the dispatcher; parity
  // bits need a positive weight.
  const auto parity_op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("actx::_prelu_with_parity", "")
          .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
              const at::Tensor&, const at::Tensor&)>();
  EXPECT_TRUE(std::get<2>(parity_op.call(x, w)).item<bool>());
  EXPECT_FALSE(std::get<2>(parity_op.call(x, -w)).item<bool>());
}

// The composition StyleGAN users write by hand, in float (double for double)
// and rounded once: what actx::bias_leaky_relu computes bit for bit.
at::Tensor bias_leaky_relu_reference(
    const at::Tensor& x,
    const at::Tensor& bias,
    double slope,
    double gain,
    std::optional<double> clamp) {
  const auto compute =
      x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const auto t = x.to(compute) + bias.to(compute).reshape({1, -1, 1, 1});
  auto v = at::where(t > 0, t, t * slope) * gain;
  if (clamp) {
    v = v.clamp(-*clamp, *clamp);
  }
  return v.to(x.scalar_type());
}

TEST_P(CapabilityTest, BiasLeakyReluMatchesTheCompositionInFloat) {
  at::manual_seed(4);
  for (auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
    const auto x = sample({2, 5, 6, 7}, dtype);
    // A float32 bias with a half-type input, as in a mixed-precision model.
    const auto bias =
        sample({5}, dtype == at::kDouble ? at::kDouble : at::kFloat);
    for (const auto& input :
         {x, x.contiguous(at::MemoryFormat::ChannelsLast)}) {
      expect_same_values(
          actx::bias_leaky_relu(input, bias),
          bias_leaky_relu_reference(input, bias, 0.2, std::sqrt(2.0), {}));
      expect_same_values(
          actx::bias_leaky_relu(input, bias, -0.3, 1.5, 0.75),
          bias_leaky_relu_reference(input, bias, -0.3, 1.5, 0.75));
    }
  }
}

// Both gradients against the composition's autograd, to second order (R1
// regularization differentiates the discriminator's gradient), with a negative
// slope and gain, where the originals' backward (the output's sign) is wrong.
TEST(Actx, BiasLeakyReluGradientsToSecondOrder) {
  at::manual_seed(5);
  const auto x0 = sample({3, 4, 5, 2}, at::kDouble);
  const auto b0 = sample({4}, at::kDouble);
  for (const double slope : {0.2, -0.4}) {
    for (const double gain : {std::sqrt(2.0), -1.25}) {
      std::vector<at::Tensor> results;
      for (bool use_actx : {true, false}) {
        auto x = x0.clone().requires_grad_();
        auto b = b0.clone().requires_grad_();
        const auto y = use_actx
            ? actx::bias_leaky_relu(x, b, slope, gain)
            : at::leaky_relu(x + b.reshape({1, -1, 1, 1}), slope) * gain;
        auto first =
            torch::autograd::grad({(y * y).sum()}, {x, b}, {}, true, true);
        auto second = torch::autograd::grad(
            {first[0].pow(2).sum() + first[1].sin().sum()}, {x, b});
        results.insert(results.end(), first.begin(), first.end());
        results.insert(results.end(), second.begin(), second.end());
      }
      for (size_t i = 0; i < 4; ++i) {
        EXPECT_TRUE(at::allclose(results[i], results[i + 4]))
            << "slope " << slope << ", gain " << gain << ", result " << i;
      }
    }
  }
  // The backward operator: both gradients in one call, 0 where clamped (only
  // |v| < clamp passes).
  const auto g = sample({3, 4, 5, 2}, at::kDouble);
  const auto [gx, gb] =
      actx::bias_leaky_relu_backward(g, x0, b0, 0.2, 2.0, 0.5, 1);
  const auto v = bias_leaky_relu_reference(x0, b0, 0.2, 2.0, {});
  const auto t = x0 + b0.reshape({1, -1, 1, 1});
  const auto expected =
      at::where(v.abs() < 0.5, at::where(t > 0, g * 2.0, g * 2.0 * 0.2), 0.0);
  expect_same_values(gx, expected);
  EXPECT_TRUE(at::allclose(gb, expected.sum(at::IntArrayRef{0, 2, 3})));
  EXPECT_NE(
      error_message([&] {
        actx::bias_leaky_relu(x0, at::zeros({3}, x0.options()));
      }).find("bias"),
      std::string::npos);
}

} // namespace

namespace {

TEST(ActxCuda, MatchesCpuAndHasGradients) {
  if (!torch::cuda::is_available()) {
    GTEST_SKIP() << "no CUDA device";
  }
  at::manual_seed(3);
  const auto x = sample({4, 8, 16, 16});
  const auto w = at::rand({8});
  const auto xc = x.cuda().requires_grad_();
  const auto wc = w.cuda().requires_grad_();
  const auto y = actx::prelu(xc, wc);
  expect_same_values(y.cpu(), actx::prelu(x, w));
  y.sum().backward();
  const auto [gx, gw] = actx::prelu_backward(at::ones_like(x), x, w);
  expect_same_values(xc.grad().cpu(), gx);
  EXPECT_TRUE(at::allclose(wc.grad().cpu(), gw, 1e-4, 1e-3));
  expect_same_values(
      actx::leaky_relu(xc.detach(), 0.2).cpu(), at::leaky_relu(x, 0.2));
}

} // namespace

#include "actx/nn.h"

namespace {

TEST(ActxNn, ModulesMatchTorchNn) {
  const auto x = sample({2, 3, 5});
  actx::nn::LeakyReLU leaky(actx::nn::LeakyReLUOptions(0.2));
  torch::nn::LeakyReLU torch_leaky(
      torch::nn::LeakyReLUOptions().negative_slope(0.2));
  expect_same_values(leaky(x), torch_leaky(x));
  actx::nn::PReLU prelu(actx::nn::PReLUOptions().num_parameters(3).init(0.1));
  torch::nn::PReLU torch_prelu(
      torch::nn::PReLUOptions().num_parameters(3).init(0.1));
  expect_same_values(prelu(x), torch_prelu(x));
  EXPECT_EQ(
      prelu->named_parameters().keys(), torch_prelu->named_parameters().keys());
  auto y = x.clone();
  actx::nn::LeakyReLU inplace(actx::nn::LeakyReLUOptions(0.2).inplace(true));
  EXPECT_TRUE(inplace(y).is_same(y));
  expect_same_values(y, torch_leaky(x));
}

} // namespace
