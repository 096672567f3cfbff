// Serving a model with actx from C++ without writing any actx code: the
// application links actx::actx (find_package(actx)), which registers the
// operators, and names nothing of actx, not even a header. It runs the same
// model saved three ways from Python (tests/python/cpp_model.py):
//   model.pt          TorchScript
//   model_fused.pt2   AOTInductor package, actx's operators compiled into
//   Inductor's kernels model_opaque.pt2  AOTInductor package that calls actx's
//   kernels (ACTX_INDUCTOR_FUSION=0)
// and checks each output against the one Python computed.
//   actx_deploy model.pt model_fused.pt2 model_opaque.pt2

#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/script.h>

#include <iostream>

namespace {

bool check(
    const char* what,
    const at::Tensor& output,
    const at::Tensor& expected) {
  const bool same =
      output.sizes() == expected.sizes() && torch::allclose(output, expected);
  std::cout << what << ": "
            << (same ? "output matches Python's"
                     : "output DIFFERS from Python's")
            << "\n";
  return same;
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr
        << "usage: actx_deploy model.pt model_fused.pt2 model_opaque.pt2\n";
    return 2;
  }
  try {
    // Loading the scripted model needs the operators registered: its graph
    // names actx::prelu.
    torch::jit::Module scripted = torch::jit::load(argv[1]);
    const at::Tensor input = scripted.attr("example_input").toTensor();
    const at::Tensor expected = scripted.attr("expected_output").toTensor();
    bool ok =
        check("TorchScript", scripted.forward({input}).toTensor(), expected);
    for (const char* package : {argv[2], argv[3]}) {
      torch::inductor::AOTIModelPackageLoader loader(package);
      ok = check(package, loader.run({input}).at(0), expected) && ok;
    }
    return ok ? 0 : 1;
  } catch (const std::exception& error) {
    std::cerr << "actx_deploy: " << error.what() << "\n";
    return 1;
  }
}
