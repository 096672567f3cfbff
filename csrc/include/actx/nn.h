#pragma once

// torch::nn-style modules for LibTorch applications: actx::nn::LeakyReLU and
// actx::nn::PReLU, with options like torch::nn::LeakyReLUOptions and
// torch::nn::PReLUOptions.

#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <ostream>

#include "actx/actx.h"

namespace actx {
namespace nn {

struct ACTX_API LeakyReLUOptions {
  /* implicit */ LeakyReLUOptions(double negative_slope = 1e-2)
      : negative_slope_(negative_slope) {}
  TORCH_ARG(double, negative_slope);
  TORCH_ARG(bool, inplace) = false;
};

class ACTX_API LeakyReLUImpl : public torch::nn::Cloneable<LeakyReLUImpl> {
 public:
  explicit LeakyReLUImpl(const LeakyReLUOptions& options_ = {});
  at::Tensor forward(at::Tensor input);
  void reset() override {}
  void pretty_print(std::ostream& stream) const override;
  LeakyReLUOptions options;
};
TORCH_MODULE(LeakyReLU);

struct ACTX_API PReLUOptions {
  TORCH_ARG(int64_t, num_parameters) = 1;
  TORCH_ARG(double, init) = 0.25;
};

class ACTX_API PReLUImpl : public torch::nn::Cloneable<PReLUImpl> {
 public:
  explicit PReLUImpl(const PReLUOptions& options_ = {});
  at::Tensor forward(const at::Tensor& input);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  PReLUOptions options;
  at::Tensor weight; // the learned slopes, num_parameters of them
};
TORCH_MODULE(PReLU);

} // namespace nn
} // namespace actx
