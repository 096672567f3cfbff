# actx_use_torch_cuda_libraries(): after find_package(Torch), makes the programs that link torch use
# the CUDA libraries that torch itself brings, not the CUDA toolkit's; sets ACTX_TORCH_CUDA_LIBRARY_DIRS
# to their folders (empty where torch brings none), for the RPATH of a library that links them.
#
# PyPI's torch wheels carry their CUDA libraries (site-packages/nvidia/*/lib: cudart, NCCL, cuDNN,
# cuBLAS, ...), which libtorch_cuda finds through its own RPATH. torch's CMake files name the
# toolkit's cudart instead, and the linker resolves libtorch_cuda's dependencies through the
# program's RPATH, which holds the toolkit's folder: a program then links (and loads) the toolkit's
# NCCL and cudart, of another release than torch's (an undefined ncclCommGrow at link time when the
# toolkit's NCCL is older). Here torch's imported targets are mended, for the including project
# only: its programs link the wheel's cudart, and the linker looks for libtorch_cuda's dependencies
# where torch does (-rpath-link, searched before any RPATH). Elsewhere (a torch without the wheel's
# folders: LibTorch, conda, a CPU build) nothing changes.
function(actx_use_torch_cuda_libraries)
  set(ACTX_TORCH_CUDA_LIBRARY_DIRS "" PARENT_SCOPE)
  if(NOT TARGET torch OR NOT TORCH_INSTALL_PREFIX)
    return()
  endif()
  file(GLOB _dirs LIST_DIRECTORIES true "${TORCH_INSTALL_PREFIX}/../nvidia/*/lib")
  if(NOT _dirs)
    return()
  endif()
  set(ACTX_TORCH_CUDA_LIBRARY_DIRS "${_dirs}" PARENT_SCOPE)
  list(JOIN _dirs ":" _path)
  set_property(TARGET torch APPEND PROPERTY INTERFACE_LINK_OPTIONS "LINKER:-rpath-link,${_path}")
  file(GLOB _cudart "${TORCH_INSTALL_PREFIX}/../nvidia/*/lib/libcudart.so.*")
  if(TARGET torch::cudart AND _cudart)
    list(GET _cudart 0 _cudart)
    set_property(TARGET torch::cudart PROPERTY INTERFACE_LINK_LIBRARIES "${_cudart}")
  endif()
endfunction()
