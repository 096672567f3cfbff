// Built by tests/cpp/run_example.sh with a plain compiler command, no CMake: an
// application that includes <actx/actx.h> and calls nothing of actx must still
// load the library, so that the operators are registered when it runs (it would
// load TorchScript or AOTInductor models).

#include <ATen/core/dispatch/Dispatcher.h>

#include <iostream>

#include <actx/actx.h>

int main() {
  for (const char* name :
       {"actx::leaky_relu", "actx::prelu", "actx::prelu_backward"}) {
    if (!c10::Dispatcher::singleton().findSchema({name, ""}).has_value()) {
      std::cerr << name
                << " is not registered: the actx library was not loaded\n";
      return 1;
    }
  }
  std::cout << "header-only application: actx's operators are registered\n";
  return 0;
}
