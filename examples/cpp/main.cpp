// Loads a TorchScript model saved from Python (it uses torch_ext.nn.PReLU and
// torch.ops.actx.leaky_relu), checks its output against the one Python stored
// in it, then trains one step of a small network with actx::nn::PReLU.
//   actx_example model.pt

#include <torch/script.h>
#include <torch/torch.h>

#include <iostream>

#include <actx/nn.h>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: actx_example model.pt\n";
    return 2;
  }
  // The model's graph names actx::prelu and actx::leaky_relu: linking actx
  // registered them.
  torch::jit::Module model = torch::jit::load(argv[1]);
  const at::Tensor input = model.attr("example_input").toTensor();
  const at::Tensor expected = model.attr("expected_output").toTensor();
  const at::Tensor output = model.forward({input}).toTensor();
  if (!torch::allclose(output, expected)) {
    std::cerr << "scripted model: output differs from Python's\n";
    return 1;
  }
  std::cout << "scripted model: output matches Python's " << output.sizes()
            << "\n";

  torch::manual_seed(0);
  torch::nn::Sequential net(
      torch::nn::Linear(4, 8),
      actx::nn::PReLU(actx::nn::PReLUOptions().num_parameters(8)),
      torch::nn::Linear(8, 1));
  torch::optim::SGD optimizer(net->parameters(), torch::optim::SGDOptions(0.1));
  const auto x = torch::randn({32, 4});
  const auto y = x.sum(1, true);
  auto prelu = net->ptr(1)->as<actx::nn::PReLUImpl>();
  const auto slopes_before = prelu->weight.clone();
  const auto loss_before = torch::mse_loss(net->forward(x), y);
  optimizer.zero_grad();
  loss_before.backward();
  optimizer.step();
  const auto loss_after = torch::mse_loss(net->forward(x), y);
  const bool slopes_moved = !torch::equal(prelu->weight, slopes_before);
  std::cout << "training step with " << *prelu << ": loss "
            << loss_before.item<double>() << " -> " << loss_after.item<double>()
            << ", slopes moved: " << std::boolalpha << slopes_moved << "\n";
  return loss_after.item<double>() < loss_before.item<double>() && slopes_moved
      ? 0
      : 1;
}
