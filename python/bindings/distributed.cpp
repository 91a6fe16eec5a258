// What dlopt.distributed needs from C++: the shard layout (dlopt/distributed/layout.hpp, shared with
// the C++ ShardedOptimizer) and which rules may be cut inside a tensor.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "dlopt/distributed/layout.hpp"
#include "dlopt/optim/registry.hpp"

namespace py = pybind11;

namespace dlopt::py_bindings {

void bind_distributed(py::module_& m) {
  m.def("shard_bounds", &distributed::shard_bounds, py::arg("sizes"), py::arg("splittable"), py::arg("nranks"),
        "The nranks + 1 boundaries of ZeRO's shards over tensors of `sizes` laid end to end.");
  m.def(
      "splits_elementwise",
      [](const std::string& name) {
#define DLOPT_SPLITS(Rule) \
  if (name == Rule::name) return distributed::splits_elementwise<Rule>;
        DLOPT_FOR_EACH_RULE(DLOPT_SPLITS)
#undef DLOPT_SPLITS
        throw py::value_error("unknown optimizer '" + name + "'");
      },
      py::arg("name"), "Whether optimizer `name`'s step may be cut inside a tensor (no reduction, no matrix rule).");
  m.attr("SHARD_ALIGN") = distributed::kShardAlign;
}

}  // namespace dlopt::py_bindings
