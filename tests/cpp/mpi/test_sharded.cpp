// dlopt::distributed under mpiexec: the sharded step equals Optimizer<Rule, T>::step on the averaged
// gradients bit for bit, for every sub-communicator size 1..N, for an elementwise rule (cut inside
// tensors), a reduction rule (LAMB: whole tensors) and a matrix rule (Muon); allreduce_mean is the
// rank-ordered mean for any bucket size; bad input throws on every rank, never hangs.

#include <cstdio>
#include <utility>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "dlopt/distributed/mpi.hpp"

namespace {

int failed = 0, passed = 0;
MPI_Comm world = MPI_COMM_WORLD;

/// Every rank learns whether the check failed anywhere (no rank runs ahead alone).
void check(MPI_Comm comm, bool ok, const std::string& what) {
  int mine = ok ? 1 : 0, all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, comm);
  (all ? passed : failed) += 1;
  int rank = 0;
  MPI_Comm_rank(world, &rank);
  if (!all && rank == 0) std::printf("FAILED: %s\n", what.c_str());
}

template <class T>
std::vector<std::vector<T>> random_tensors(const std::vector<int64_t>& sizes, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> d;
  std::vector<std::vector<T>> out;
  for (int64_t n : sizes) {
    std::vector<T> v(static_cast<std::size_t>(n));
    if constexpr (dlopt::is_16bit(dlopt::storage_of<T>)) {
      std::vector<float> f(v.size());
      for (auto& x : f) x = float(d(gen));
      dlopt::from_float(dlopt::Buffer(v.data()), n, f.data());
    } else {
      for (auto& x : v) x = T(d(gen));
    }
    out.push_back(v);
  }
  return out;
}

template <class T>
bool same(const std::vector<std::vector<T>>& a, const std::vector<std::vector<T>>& b) {
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].size() != b[i].size() || std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(T)) != 0) return false;
  return true;
}

template <class Rule, class T>
void sharded_equals_unsharded(MPI_Comm comm, const std::vector<int64_t>& sizes, const std::vector<int64_t>& rows,
                              typename Rule::Config config, std::size_t bucket_bytes, const std::string& what,
                              dlopt::StorageOptions options = {}) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  auto params = random_tensors<T>(sizes, 1), ref = params;
  std::vector<dlopt::ParamView<T>> views, ref_views;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    views.push_back({params[i].data(), sizes[i], rows[i]});
    ref_views.push_back({ref[i].data(), sizes[i], rows[i]});
  }
  dlopt::distributed::ShardedOptimizer<Rule, T> zero(comm, views, config, options, bucket_bytes);
  dlopt::Optimizer<Rule, T> opt(ref_views, config, options);
  for (int t = 0; t < 3; ++t) {
    auto grads = random_tensors<T>(sizes, 100 + unsigned(rank) * 7 + unsigned(t));
    auto averaged = grads;
    std::vector<dlopt::Span<T>> spans;
    std::vector<const T*> g, a;
    for (auto& x : averaged) spans.push_back({x.data(), int64_t(x.size())}), a.push_back(x.data());
    for (auto& x : grads) g.push_back(x.data());
    dlopt::distributed::allreduce_mean(comm, spans);
    zero.step(g);
    opt.step(a);
  }
  check(comm, same(params, ref), what);
}

void every_size() {
  int n = 1, rank = 0;
  MPI_Comm_size(world, &n);
  MPI_Comm_rank(world, &rank);
  for (int size = 1; size <= n; ++size) {
    MPI_Comm comm;
    MPI_Comm_split(world, rank < size ? 0 : MPI_UNDEFINED, rank, &comm);
    if (comm == MPI_COMM_NULL) continue;
    const std::string on = " on " + std::to_string(size) + " ranks";
    const std::vector<int64_t> sizes = {8320, 12291, 7, 10000, 15000, 4};
    const std::vector<int64_t> rows = {64, 3, 1, 100, 50, 2};
    dlopt::AdamConfig adam;
    adam.lr = 0.01;
    adam.amsgrad = true;
    sharded_equals_unsharded<dlopt::AdamRule, float>(comm, sizes, rows, adam, std::size_t(25) << 20, "Adam float" + on);
    sharded_equals_unsharded<dlopt::AdamRule, float>(comm, sizes, rows, adam, 1000, "Adam float, small buckets" + on);
    dlopt::SGDConfig sgd;
    sgd.lr = 0.1;
    sgd.momentum = 0.9;
    sharded_equals_unsharded<dlopt::SGDRule, double>(comm, sizes, rows, sgd, std::size_t(25) << 20, "SGD double" + on);
    dlopt::LAMBConfig lamb;
    lamb.lr = 0.01;
    sharded_equals_unsharded<dlopt::LAMBRule, float>(comm, sizes, rows, lamb, std::size_t(25) << 20, "LAMB" + on);
    // 16-bit parameters: whole tensors with stochastic rounding (the default), cut without it
    dlopt::StorageOptions nearest;
    nearest.stochastic_rounding = false;
    dlopt::StorageOptions master;
    master.master_weights = true;
    sharded_equals_unsharded<dlopt::AdamRule, dlopt::bfloat16>(comm, sizes, rows, adam, std::size_t(25) << 20,
                                                               "Adam bfloat16, stochastic rounding" + on);
    sharded_equals_unsharded<dlopt::AdamRule, dlopt::bfloat16>(comm, sizes, rows, adam, 1000,
                                                               "Adam bfloat16, to nearest, small buckets" + on, nearest);
    sharded_equals_unsharded<dlopt::AdamRule, dlopt::float16>(comm, sizes, rows, adam, std::size_t(25) << 20,
                                                              "Adam float16, master weights" + on, master);
    dlopt::MuonConfig muon;
    sharded_equals_unsharded<dlopt::MuonRule, float>(comm, {8320, 12291, 10000}, {64, 3, 100}, muon,
                                                     std::size_t(25) << 20, "Muon" + on);
    // the rank-ordered mean, whatever the bucket size
    auto x = random_tensors<double>({5000, 3}, 50 + unsigned(rank)), y = x;
    std::vector<dlopt::Span<double>> sx = {{x[0].data(), 5000}, {x[1].data(), 3}}, sy = {{y[0].data(), 5000}, {y[1].data(), 3}};
    dlopt::distributed::allreduce_mean(comm, sx);
    dlopt::distributed::allreduce_mean(comm, sy, 24);
    check(comm, same(x, y), "allreduce_mean: the same bits for any bucket size" + on);
    MPI_Comm_free(&comm);
  }
}

/// Bytes of every slot, scale and master copy, and the step counts, of a state.
template <class Rule>
bool same_state(const dlopt::OptimizerState<Rule>& a, const dlopt::OptimizerState<Rule>& b) {
  if (a.tensors.size() != b.tensors.size()) return false;
  for (std::size_t i = 0; i < a.tensors.size(); ++i) {
    const auto &x = a.tensors[i], &y = b.tensors[i];
    if (x.scalars.step != y.scalars.step || x.master != y.master) return false;
    for (std::size_t k = 0; k < x.slots.size(); ++k)
      if (x.slots[k].bytes != y.slots[k].bytes || x.slots[k].scales != y.slots[k].scales ||
          x.slots[k].storage != y.slots[k].storage)
        return false;
  }
  return true;
}

/// Two steps sharded on every rank of `world`, a checkpoint gathered on rank 0, then two more steps
/// resumed from it on each sub-communicator size (resharded): parameters and state bit for bit
/// those of the unsharded optimizer, stepped on the same averaged gradients all along.
template <class Rule, class T>
void checkpoints_reshard(typename Rule::Config config, dlopt::StorageOptions options, const std::string& what) {
  int n = 1, rank = 0;
  MPI_Comm_size(world, &n);
  MPI_Comm_rank(world, &rank);
  const std::vector<int64_t> sizes = {8320, 12291, 7, 10000}, rows = {64, 3, 1, 100};
  const std::vector<std::string> names = {"a", "b", "c", "d"};
  auto views_of = [&](std::vector<std::vector<T>>& p) {
    std::vector<dlopt::ParamView<T>> v;
    for (std::size_t i = 0; i < p.size(); ++i) v.push_back({p[i].data(), sizes[i], rows[i]});
    return v;
  };
  auto averaged = [&](MPI_Comm comm, unsigned t) {
    int r = 0;
    MPI_Comm_rank(comm, &r);
    auto g = random_tensors<T>(sizes, 300 + unsigned(r) * 11 + t), mean = g;
    std::vector<dlopt::Span<T>> spans;
    for (auto& x : mean) spans.push_back({x.data(), int64_t(x.size())});
    dlopt::distributed::allreduce_mean(comm, spans);
    return std::make_pair(g, mean);
  };
  auto pointers = [](const std::vector<std::vector<T>>& v) {
    std::vector<const T*> out;
    for (auto& x : v) out.push_back(x.data());
    return out;
  };
  auto params = random_tensors<T>(sizes, 2), ref = params;
  dlopt::Optimizer<Rule, T> opt(views_of(ref), config, options);
  const std::string path = "dlopt_mpi_test_" + std::to_string(n) + ".dlopt";
  {
    dlopt::distributed::ShardedOptimizer<Rule, T> zero(world, views_of(params), config, options);
    for (unsigned t = 0; t < 2; ++t) {
      auto [g, mean] = averaged(world, t);
      zero.step(pointers(g));
      opt.step(pointers(mean));
    }
    const dlopt::OptimizerState<Rule> full = zero.state_dict();
    check(world, rank != 0 || same_state(full, opt.state_dict()), what + ": state_dict gathers the unsharded state");
    check(world, rank == 0 || full.tensors.empty(), what + ": state_dict is empty off the root");
    dlopt::SaveOptions save;
    save.names = names;
    dlopt::distributed::save(path, zero, save);
  }
  const auto ref_state = opt.state_dict();
  const auto ref_params = ref;
  for (int size = 1; size <= n; ++size) {
    MPI_Comm comm;
    MPI_Comm_split(world, rank < size ? 0 : MPI_UNDEFINED, rank, &comm);
    if (comm == MPI_COMM_NULL) continue;
    const std::string on = " on " + std::to_string(size) + " of " + std::to_string(n) + " ranks";
    // the unsharded reference, resumed from its own state
    auto r = ref_params;
    dlopt::Optimizer<Rule, T> resumed(views_of(r), config, options);
    resumed.load_state_dict(ref_state);
    // the sharded run: fresh parameters, everything from the file (load), or from a state (load_state_dict)
    auto p = random_tensors<T>(sizes, 99), q = ref_params;
    dlopt::distributed::ShardedOptimizer<Rule, T> a(comm, views_of(p), config, options), b(comm, views_of(q), config, options);
    dlopt::distributed::load(path, a, names);
    b.load_state_dict(ref_state);
    for (unsigned t = 2; t < 4; ++t) {
      auto [g, mean] = averaged(comm, t);
      a.step(pointers(g));
      b.step(pointers(g));
      resumed.step(pointers(mean));
    }
    check(comm, same(p, r) && same(q, r), what + ": resumed, resharded" + on);
    const auto sa = a.state_dict(), sb = b.state_dict(size - 1);
    int crank = 0;
    MPI_Comm_rank(comm, &crank);
    check(comm, crank != 0 || same_state(sa, resumed.state_dict()), what + ": state after resuming" + on);
    check(comm, crank != size - 1 || same_state(sb, resumed.state_dict()), what + ": state_dict on another root" + on);
    // a state of another model: every rank throws, nothing changes
    auto bad = ref_state;
    bad.tensors.pop_back();
    bool threw = false;
    try {
      a.load_state_dict(bad, 0);
    } catch (const dlopt::InvalidArgument&) {
      threw = true;
    }
    a.step(pointers(averaged(comm, 9).first));
    resumed.step(pointers(averaged(comm, 9).second));
    check(comm, threw && same(p, r), what + ": a state of another model throws on every rank, nothing changed" + on);
    MPI_Comm_free(&comm);
  }
  MPI_Barrier(world);
  if (rank == 0) std::remove(path.c_str());
}

template <class F>
bool throws_everywhere(F&& f) {
  bool threw = false;
  try {
    f();
  } catch (const dlopt::InvalidArgument&) {
    threw = true;
  }
  return threw;
}

void bad_input() {
  int n = 1, rank = 0;
  MPI_Comm_size(world, &n);
  MPI_Comm_rank(world, &rank);
  std::vector<float> w(100), g(100);
  // ranks disagree on the parameter sizes (rank 0 differs when there are several ranks)
  const int64_t size = (rank == 0 && n > 1) ? 99 : 100;
  bool threw = throws_everywhere([&] {
    dlopt::distributed::ShardedOptimizer<dlopt::AdamRule> opt(world, {{w.data(), size}});
  });
  check(world, threw == (n > 1), "different sizes on different ranks throw on every rank");
  dlopt::distributed::ShardedOptimizer<dlopt::AdamRule> opt(world, {{w.data(), 100}});
  const std::vector<float> before = w;
  // a null gradient on the last rank only
  threw = throws_everywhere([&] { opt.step({rank == n - 1 ? nullptr : g.data()}); });
  check(world, threw && w == before, "a bad gradient on one rank throws on every rank, nothing changed");
  opt.config().lr = rank == n - 1 ? -1.0 : 1e-3;
  threw = throws_everywhere([&] { opt.step({g.data()}); });
  check(world, threw && w == before, "a bad hyperparameter on one rank throws on every rank");
  opt.config().lr = 1e-3;
  opt.step({g.data()});
  check(world, true, "steps again afterwards");
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  every_size();
  bad_input();
  dlopt::AdamConfig adam;
  adam.lr = 0.01;
  adam.amsgrad = true;
  checkpoints_reshard<dlopt::AdamRule, float>(adam, {}, "Adam float");
  dlopt::StorageOptions int8;
  int8.state_dtype = dlopt::StateDType::Int8;
  int8.stochastic_rounding = false;
  checkpoints_reshard<dlopt::AdamRule, float>(adam, int8, "Adam float, 8-bit state");
  dlopt::StorageOptions master;
  master.master_weights = true;
  checkpoints_reshard<dlopt::AdamRule, dlopt::bfloat16>(adam, master, "Adam bfloat16, master weights");
  int rank = 0;
  MPI_Comm_rank(world, &rank);
  if (rank == 0) std::printf("%d passed, %d failed\n", passed, failed);
  MPI_Finalize();
  return failed ? 1 : 0;
}
