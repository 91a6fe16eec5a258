// C++ tests of the training utilities: clipping, accumulation/averaging passes, closed-form
// schedules and the checkpoint reader/writer, each against a hand-computed value.
// (Parity with torch is tested from Python, which drives the same functions.)

#include <cmath>
#include <cstdio>
#include <fstream>
#include <cerrno>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "dlopt/dlopt.hpp"
#include "harness.hpp"

namespace {

using namespace dlopt_test;

void clipping() {
  std::vector<double> a = {3.0, 0.0}, b = {4.0};
  dlopt::Span<double> g[] = {{a.data(), 2}, {b.data(), 1}};
  const double total = dlopt::clip_grad_norm(g, 2, 1.0);
  check(near(total, 5.0), "2-norm of [3, 0, 4] is 5");
  check(near(a[0], 3.0 / (5.0 + 1e-6)) && near(b[0], 4.0 / (5.0 + 1e-6)), "scaled by 1/(5+1e-6)");

  std::vector<float> big(100000);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = float(i % 7) - 3.0f;
  dlopt::Span<const float> v[] = {{big.data(), int64_t(big.size())}};
  double sq = 0, mx = 0;
  for (float x : big) { sq += double(x) * x; mx = std::max(mx, double(std::abs(x))); }
  check(near(dlopt::total_norm(v, 1, 2.0), std::sqrt(sq)), "2-norm over many blocks");
  check(dlopt::total_norm(v, 1, INFINITY) == mx, "inf-norm");
  dlopt::set_num_threads(1);
  const double one = dlopt::total_norm(v, 1, 3.0);
  dlopt::set_num_threads(3);
  check(dlopt::total_norm(v, 1, 3.0) == one, "norm bitwise equal for 1 and 3 threads");

  std::vector<float> nan = {1.0f, NAN};
  dlopt::Span<float> n[] = {{nan.data(), 2}};
  check(throws<dlopt::NonFiniteNorm>([&] { dlopt::clip_grad_norm(n, 1, 1.0, 2.0, true); }) &&
            nan[0] == 1.0f, "non-finite norm throws before scaling");

  std::vector<float> c = {-3.0f, 0.5f, 2.0f, NAN};
  dlopt::Span<float> cs[] = {{c.data(), 4}};
  dlopt::clip_grad_value(cs, 1, 1.0);
  check(c[0] == -1.0f && c[1] == 0.5f && c[2] == 1.0f && std::isnan(c[3]), "clip_grad_value");
}

void averaging() {
  std::vector<float> buf(3), g1 = {1, 2, 3}, g2 = {3, 2, 1};
  dlopt::Span<float> d[] = {{buf.data(), 3}};
  dlopt::Span<const float> s1[] = {{g1.data(), 3}}, s2[] = {{g2.data(), 3}};
  dlopt::accumulate(d, s1, 1, true);
  dlopt::accumulate(d, s2, 1, false);
  check(buf[0] == 4 && buf[1] == 4 && buf[2] == 4, "accumulate: copy then add");
  std::vector<float> short_g = {1, 2};
  dlopt::Span<const float> bad[] = {{short_g.data(), 2}};
  check(throws<dlopt::InvalidArgument>([&] { dlopt::accumulate(d, bad, 1, false); }) && buf[0] == 4,
        "accumulate: size mismatch throws before writing");

  std::vector<double> shadow = {0.0, 1.0}, p = {1.0, 1.0};
  dlopt::Span<double> sh[] = {{shadow.data(), 2}};
  dlopt::Span<const double> ps[] = {{p.data(), 2}};
  dlopt::ema_update(sh, ps, 1, 0.75);
  check(near(shadow[0], 0.25) && near(shadow[1], 1.0), "ema_update");

  std::vector<double> slow = {0.0}, fast = {2.0};
  dlopt::Span<double> sl[] = {{slow.data(), 1}}, fa[] = {{fast.data(), 1}};
  dlopt::lookahead_update(sl, fa, 1, 0.25);
  check(near(slow[0], 0.5) && near(fast[0], 0.5), "lookahead_update");
}

void schedules() {
  check(near(dlopt::StepDecay{1.0, 3, 0.5}.lr(7), 0.25), "StepDecay");
  check(near(dlopt::MultiStepDecay{1.0, {2, 5}, 0.1}.lr(5), 0.01), "MultiStepDecay");
  check(near(dlopt::ExponentialDecay{2.0, 0.5}.lr(3), 0.25), "ExponentialDecay");
  check(near(dlopt::CosineAnnealing{1.0, 10, 0.0}.lr(5), 0.5), "CosineAnnealing halfway");
  check(near(dlopt::LinearWarmup{1.0, 0.0, 1.0, 4}.lr(1), 0.25), "LinearWarmup");
  check(near(dlopt::PolynomialDecay{1.0, 4, 2.0}.lr(2), 0.25), "PolynomialDecay");
  check(near(dlopt::ConstantFactor{1.0, 0.5, 2}.lr(1), 0.5) &&
            near(dlopt::ConstantFactor{1.0, 0.5, 2}.lr(2), 1.0), "ConstantFactor");
  const dlopt::WarmupStableDecay wsd{1.0, 2, 2, 4, 0.2};
  const double expected[] = {0.0, 0.5, 1.0, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2, 0.2};
  bool ok = true;
  for (int t = 0; t < 10; ++t) ok = ok && near(wsd.lr(t), expected[t]);
  check(ok, "WarmupStableDecay");
  const dlopt::OneCycle oc{1.0, 100};
  check(near(oc.lr(0), 1.0 / 25) && near(oc.lr(29), 1.0) && near(oc.lr(99), 1.0 / 25 / 1e4),
        "OneCycle start, peak, end");
  check(throws<dlopt::InvalidArgument>([&] { oc.lr(101); }), "OneCycle past total_steps throws");
  dlopt::ScheduleFn f = dlopt::Warmup<dlopt::CosineAnnealing>{10, 0.0, {1.0, 100}};
  check(near(f(5), 0.5) && near(f(10), 1.0) && near(f(60), 0.5), "Warmup<CosineAnnealing>");
}

void checkpoints() {
  const std::string path = "dlopt_test_train.dlopt";
  std::vector<float> w = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f};
  std::vector<double> b = {0.125};
  dlopt::write_checkpoint(path, {dlopt::named_array("fc.weight", w.data(), {2, 3}),
                                 dlopt::named_array("fc.bias", b.data(), {1})});
  const dlopt::Checkpoint ckpt = dlopt::read_checkpoint(path);
  const dlopt::CheckpointArray& rw = ckpt.at("params/fc.weight");
  check(ckpt.version == 1 && rw.shape == std::vector<int64_t>{2, 3} && rw.dtype == "<f4",
        "read back name, shape, dtype");
  check(std::equal(w.begin(), w.end(), rw.as<float>()), "read back float data");
  check(ckpt.at("params/fc.bias").as<double>()[0] == 0.125, "read back double data");
  check(ckpt.header_json.find("\"fc.weight\": {\"__array__\": \"params/fc.weight\"}") != std::string::npos,
        "JSON header references the arrays");
  check(throws<dlopt::CheckpointError>([&] { rw.as<double>(); }), "as<T> checks the dtype");
  check(throws<dlopt::CheckpointError>([&] { ckpt.at("nope"); }), "at() names a missing array");

  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto rejects = [&](std::string data, const std::string& what) {
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out << data;
    }
    std::string msg;
    try {
      dlopt::read_checkpoint(path);
    } catch (const dlopt::CheckpointError& e) {
      msg = e.what();
    }
    check(msg.find(what) != std::string::npos, "rejects " + what + " (got: " + msg + ")");
  };
  rejects(bytes.substr(0, bytes.size() - 1), "truncated");
  rejects(bytes.substr(0, 30), "truncated");
  std::string flipped = bytes;
  flipped[flipped.size() - 1] ^= 0x40;
  rejects(flipped, "checksum mismatch in array");
  flipped = bytes;
  flipped[70] ^= 1;
  rejects(flipped, "header checksum");
  flipped = bytes;
  flipped[8] = 2;
  rejects(flipped, "prelude checksum");
  rejects("XXXXXXXX" + bytes.substr(8), "not a dlopt checkpoint");
  std::remove(path.c_str());
  check(throws<dlopt::CheckpointError>([&] { dlopt::read_checkpoint(path); }), "missing file");
  try {
    dlopt::read_checkpoint(path);
  } catch (const dlopt::CheckpointIOError& e) {
    check(e.code == ENOENT && e.path == path, "a missing file is an I/O error with its errno");
  }

  // The general writer (what dlopt.save calls): any header, arrays under their own names.
  const int64_t ints[3] = {1, -2, 3};
  const unsigned char flags[2] = {1, 0};
  dlopt::write_checkpoint(path, "{\"format\": \"dlopt-checkpoint\"}",
                          {{"extra/ints", "<i8", {3}, ints, sizeof ints},
                           {"extra/flags", "|b1", {2}, flags, sizeof flags},
                           {"extra/empty", "bfloat16", {0, 4}, nullptr, 0}});
  const dlopt::Checkpoint raw = dlopt::read_checkpoint(path);
  check(raw.header_json == "{\"format\": \"dlopt-checkpoint\"}" && raw.arrays.size() == 3 &&
            raw.at("extra/ints").as<int64_t>()[1] == -2 && raw.at("extra/flags").data[0] == 1 &&
            raw.at("extra/empty").shape == std::vector<int64_t>{0, 4},
        "general writer: header and named arrays read back");
  check(dlopt::checkpoint_itemsize("<f4") == 4 && dlopt::checkpoint_itemsize("|b1") == 1 &&
            dlopt::checkpoint_itemsize("bfloat16") == 2 && dlopt::checkpoint_itemsize("<c16") == 16 &&
            dlopt::checkpoint_itemsize("<U4") == 0 && dlopt::checkpoint_itemsize(">f8") == 0 &&
            dlopt::checkpoint_itemsize("<i3") == 0 && dlopt::checkpoint_itemsize("|O") == 0,
        "checkpoint_itemsize knows the stored dtypes only");
  check(throws<dlopt::CheckpointError>([&] {
          dlopt::write_checkpoint(path, "{}", {{"x", "<U1", {1}, ints, 4}});
        }, "not one a checkpoint stores"), "writer refuses an unknown dtype");
  check(throws<dlopt::CheckpointError>([&] {
          dlopt::write_checkpoint(path, "{}", {{"x", "<i8", {2}, ints, 8}});
        }, "8 bytes for 2 elements"), "writer checks bytes against the shape");
  check(throws<dlopt::CheckpointError>([&] {
          dlopt::write_checkpoint(path, "{}", {{"x", "<i8", {1}, ints, 8}, {"x", "<i8", {1}, ints, 8}});
        }, "twice"), "writer refuses a repeated name");
  check(dlopt::read_checkpoint(path).arrays.size() == 3, "a refused write leaves the file as it was");
  bool synced = false;
  check(throws<std::runtime_error>([&] {
          dlopt::write_checkpoint(path, "{}", {}, [&](int) { synced = true; throw std::runtime_error("crash"); });
        }, "crash") && synced && dlopt::read_checkpoint(path).arrays.size() == 3,
        "a failing sync leaves the previous file");
  std::remove(path.c_str());
}

}  // namespace

int main() {
  clipping();
  averaging();
  schedules();
  checkpoints();
  return summary();
}
