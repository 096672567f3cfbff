// The portable element loops, compiled with the baseline flags: what runs on
// any CPU.
#include "cpu/vec_scalar.h"

namespace actx {
namespace cpu {
namespace scalar {
#include "cpu/activation_kernel.h"
} // namespace scalar
} // namespace cpu
} // namespace actx
