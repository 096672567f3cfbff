#include "actx/nn.h"

#include <torch/torch.h>

namespace actx {
namespace nn {

LeakyReLUImpl::LeakyReLUImpl(const LeakyReLUOptions& options_)
    : options(options_) {}

at::Tensor LeakyReLUImpl::forward(at::Tensor input) {
  if (options.inplace()) {
    return actx::leaky_relu_(input, options.negative_slope());
  }
  return actx::leaky_relu(input, options.negative_slope());
}

void LeakyReLUImpl::pretty_print(std::ostream& stream) const {
  stream << "actx::nn::LeakyReLU(negative_slope=" << options.negative_slope();
  if (options.inplace()) {
    stream << ", inplace=true";
  }
  stream << ")";
}

PReLUImpl::PReLUImpl(const PReLUOptions& options_) : options(options_) {
  reset();
}

void PReLUImpl::reset() {
  weight = register_parameter(
      "weight", torch::full({options.num_parameters()}, options.init()));
}

at::Tensor PReLUImpl::forward(const at::Tensor& input) {
  return actx::prelu(input, weight);
}

void PReLUImpl::pretty_print(std::ostream& stream) const {
  stream << "actx::nn::PReLU(num_parameters=" << options.num_parameters()
         << ")";
}

} // namespace nn
} // namespace actx
