// dlopt::distributed under mpiexec: the sharded step equals Optimizer<Rule, T>::step on the averaged
// gradients bit for bit, for every sub-communicator size 1..N, for an elementwise rule (cut inside
// tensors), a reduction rule (LAMB: whole tensors) and a matrix rule (Muon); allreduce_mean is the
// rank-ordered mean for any bucket size; bad input throws on every rank, never hangs.

#include <cstdio>
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
    for (auto& x : v) x = T(d(gen));
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
                              typename Rule::Config config, std::size_t bucket_bytes, const std::string& what) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  auto params = random_tensors<T>(sizes, 1), ref = params;
  std::vector<dlopt::ParamView<T>> views, ref_views;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    views.push_back({params[i].data(), sizes[i], rows[i]});
    ref_views.push_back({ref[i].data(), sizes[i], rows[i]});
  }
  dlopt::distributed::ShardedOptimizer<Rule, T> zero(comm, views, config, {}, bucket_bytes);
  dlopt::Optimizer<Rule, T> opt(ref_views, config);
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
  int rank = 0;
  MPI_Comm_rank(world, &rank);
  if (rank == 0) std::printf("%d passed, %d failed\n", passed, failed);
  MPI_Finalize();
  return failed ? 1 : 0;
}
