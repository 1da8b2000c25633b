// dwd_fast._cuda: the CUDA kernels. Importing never touches the GPU; calls report why CUDA is unusable.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "cuda/probe.h"

namespace py = pybind11;

namespace {

py::dict device_info() {
  py::dict d;
  int runtime = 0, driver = 0, count = 0;
  cudaRuntimeGetVersion(&runtime);
  d["runtime_version"] = runtime;
  const cudaError_t de = cudaDriverGetVersion(&driver);
  d["driver_version"] = de == cudaSuccess ? driver : 0;
  const cudaError_t ce = cudaGetDeviceCount(&count);
  d["device_count"] = ce == cudaSuccess ? count : 0;
  d["usable"] = ce == cudaSuccess && count > 0;
  d["error"] = ce == cudaSuccess ? (count > 0 ? "" : "no CUDA device") : std::string(cudaGetErrorString(ce));
  if (ce != cudaSuccess) cudaGetLastError();  // clear the sticky error state
  py::list devices;
  for (int i = 0; ce == cudaSuccess && i < count; ++i) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    devices.append(py::make_tuple(std::string(prop.name), prop.major * 10 + prop.minor));
  }
  d["devices"] = devices;
  return d;
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "dwd_fast CUDA kernels (private; use the dwd_fast package)";
  m.def("device_info", &device_info);
  m.def(
      "selftest",
      [](std::int64_t n) {
        py::gil_scoped_release nogil;
        return dwd::cuda_selftest(n);
      },
      py::arg("n") = 1 << 20);
  m.attr("archs") = DWD_FAST_CUDA_ARCHS;
}
