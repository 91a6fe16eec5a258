#include <pybind11/pybind11.h>

#include "dlopt/core/bf16_matmul.hpp"
#include "dlopt/core/error.hpp"
#include "dlopt/core/step.hpp"
#include "dlopt/version.hpp"

namespace py = pybind11;

namespace dlopt::py_bindings {
void bind_optim(py::module_& m);
void bind_train(py::module_& m);
void bind_cuda(py::module_& m);
void bind_models(py::module_& m);
void bind_models_cuda(py::module_& m);
void bind_metrics(py::module_& m);
void bind_lbfgs(py::module_& m);
void bind_distributed(py::module_& m);
void bind_schedule(py::module_& m);
}

PYBIND11_MODULE(_core, m) {
  m.doc() = "dlopt's compiled core; use the dlopt package, not this module.";
  m.attr("__version__") = DLOPT_VERSION;
  m.attr("has_cuda") = bool(DLOPT_HAS_CUDA);

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const dlopt::WrongType& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const dlopt::InvalidArgument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const dlopt::NotCompiled& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });

  m.def("get_num_threads", &dlopt::get_num_threads,
        "Threads used by the CPU kernels.\n\n"
        "Returns\n-------\nint\n    OpenMP's maximum thread count (1 in a build without OpenMP).\n\n"
        "Examples\n--------\n>>> import dlopt\n>>> dlopt.get_num_threads() >= 1\nTrue\n");
  m.def("set_num_threads", &dlopt::set_num_threads, py::arg("n"),
        "Sets the threads used by the CPU kernels (OpenMP).\n\n"
        "Parameters\n----------\nn : int\n    The number of threads, at least 1.\n\n"
        "Raises\n------\nValueError\n    ``n < 1``.\n\n"
        "Examples\n--------\n>>> import dlopt\n>>> n = dlopt.get_num_threads()\n"
        ">>> dlopt.set_num_threads(1); dlopt.get_num_threads()\n1\n>>> dlopt.set_num_threads(n)\n");
  m.def("cpu_kernels", &dlopt::cpu_kernels,
        "The instruction set the CPU kernels run with.\n\n"
        "A portable build (the default) compiles the optimizer kernels for several x86-64 levels and the\n"
        "loader picks the best the CPU has; a build with DLOPT_NATIVE=ON is compiled for its build machine.\n\n"
        "Returns\n-------\nstr\n    ``'x86-64-v4'`` (AVX-512), ``'x86-64-v3'`` (AVX2) or ``'x86-64'`` (SSE2) in a portable\n"
        "    x86-64 build; ``'native'`` with DLOPT_NATIVE=ON; ``'generic'`` in a portable build elsewhere.\n\n"
        "Examples\n--------\n>>> import dlopt\n>>> dlopt.cpu_kernels() in ('x86-64-v4', 'x86-64-v3', 'x86-64', 'native', 'generic')\nTrue\n");
  m.def("bf16_matmul_library", &dlopt::bf16_matmul_library,
        "The library Muon's bfloat16 Newton–Schulz products (``ns_dtype='bfloat16'``) run with.\n\n"
        "Found at build time (CMake's DLOPT_ONEDNN, AUTO by default: Debian/Ubuntu's libdnnl-dev).\n\n"
        "Returns\n-------\nstr\n    ``'oneDNN X.Y.Z'``, or ``'none'`` (a build without it: Eigen's float32 GEMM, each product\n"
        "    rounded to bfloat16; the same roundings, slower).\n\n"
        "Examples\n--------\n>>> import dlopt\n>>> dlopt.bf16_matmul_library().startswith(('oneDNN', 'none'))\nTrue\n");
  dlopt::py_bindings::bind_optim(m);
  dlopt::py_bindings::bind_train(m);
  dlopt::py_bindings::bind_cuda(m);
  dlopt::py_bindings::bind_models(m);
  dlopt::py_bindings::bind_models_cuda(m);
  dlopt::py_bindings::bind_metrics(m);
  dlopt::py_bindings::bind_lbfgs(m);
  dlopt::py_bindings::bind_distributed(m);
  dlopt::py_bindings::bind_schedule(m);
}
