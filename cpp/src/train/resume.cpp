// dlopt::write_training_checkpoint / read_training_checkpoint: the JSON header of a training
// checkpoint in exactly the tree Python's dlopt.save writes (python/dlopt/checkpoint.py), on top of
// the container (write_checkpoint / read_checkpoint). The param group's keys are Python's: the
// composite keywords (betas, eps pairs, ...), None meanings and choices are translated by the table
// the binding's group_fields uses for a live optimizer (dlopt/param_group_keys.hpp).

#include "dlopt/resume.hpp"

#include <cmath>
#include <limits>

#include "dlopt/param_group_keys.hpp"
#include "dlopt/version.hpp"
#include "json.hpp"

namespace dlopt {

const char* storage_dtype(Storage s) {
  switch (s) {
    case Storage::Float64: return "<f8";
    case Storage::Float32: return "<f4";
    case Storage::BFloat16: return "bfloat16";
    case Storage::Float16: return "<f2";
    case Storage::Int8: return "|i1";
    case Storage::UInt8: return "|u1";
  }
  return "?";
}

std::optional<Storage> storage_from_dtype(const std::string& dtype) {
  for (Storage s : {Storage::Float64, Storage::Float32, Storage::BFloat16, Storage::Float16, Storage::Int8,
                    Storage::UInt8})
    if (dtype == storage_dtype(s)) return s;
  return std::nullopt;
}

namespace {

using json::Value;

/// Where a Python class's param group differs from its rule's Config: a field the class fixes and
/// does not take (`value` null: not written), or its train / eval mode (`mode`: the group's
/// "train_mode", OptimizerRecord::train_mode).
struct PythonKey {
  const char* optimizer;
  const char* key;
  bool mode;
};
constexpr PythonKey kPythonKeys[] = {{"AdamW", "decoupled_weight_decay", false},
                                     {"ScheduleFreeSGD", "train_mode", true},
                                     {"ScheduleFreeAdamW", "train_mode", true}};

const PythonKey* python_key(const std::string& optimizer, const std::string& key) {
  for (const PythonKey& k : kPythonKeys)
    if (optimizer == k.optimizer && key == k.key) return &k;
  return nullptr;
}

// ---- writing ---------------------------------------------------------------------------------

std::string number(const ConfigValue& v) {
  if (v.kind == ConfigValue::Kind::Boolean) return v.value != 0 ? "true" : "false";
  if (v.kind == ConfigValue::Kind::Integer) return std::to_string(int64_t(v.value));
  return json::real(v.value);
}

/// The param group's hyperparameters as Python's keys (without "params").
std::string group_keys(const OptimizerRecord& r) {
  std::vector<std::pair<std::string, std::string>> keys;
  std::vector<bool> done(r.config.size());
  auto index = [&](const char* name) -> std::ptrdiff_t {
    for (std::size_t i = 0; i < r.config.size(); ++i)
      if (r.config[i].name == name) return std::ptrdiff_t(i);
    return -1;
  };
  // a Config value equal to a None meaning's value is written as Python's None
  auto is_none = [&](const group_keys::NoneMeans* n) {
    const std::ptrdiff_t j = n ? index(n->field) : -1;
    return j >= 0 && group_keys::means_none(*n, r.config[std::size_t(j)].value);
  };
  for (std::size_t i = 0; i < r.config.size(); ++i) {
    if (done[i]) continue;
    const ConfigValue& v = r.config[i];
    std::string text;
    for (const group_keys::Composite& c : group_keys::kComposites) {
      if (index(c.fields[0]) != std::ptrdiff_t(i) || index(c.fields[1]) < 0) continue;
      for (const char* f : c.fields) {
        const std::ptrdiff_t j = f ? index(f) : -1;
        if (j < 0) continue;
        done[std::size_t(j)] = true;
        const bool none = is_none(group_keys::none_for_field(f));
        text += std::string(text.empty() ? "" : ", ") + (none ? "null" : number(r.config[std::size_t(j)]));
      }
      keys.emplace_back(c.key, "{\"__tuple__\": [" + text + "]}");
    }
    if (!text.empty()) continue;
    done[i] = true;
    const group_keys::NoneMeans* hidden = group_keys::none_for_field(v.name);
    if (python_key(r.type, v.name)) {
      continue;  // fixed by the Python class
    } else if (const group_keys::Choice* c = group_keys::choice_for_field(v.name)) {
      keys.emplace_back(c->key, v.value == 0 && c->none_is_first ? "null" : json::quote(c->names[v.value != 0]));
    } else if (hidden && v.name != hidden->key) {
      continue;  // no Python keyword: its key's None says it (clip: clip_exponent=None)
    } else if (is_none(group_keys::none_for_key(v.name))) {
      keys.emplace_back(v.name, "null");
    } else {
      keys.emplace_back(v.name, number(v));
    }
  }
  const StorageOptions& o = r.options;
  const std::string dtype = o.state_dtype == StateDType::Default ? "None" : state_dtype_name(o.state_dtype);
  keys.emplace_back("state_dtype", dtype == "None" ? "null" : json::quote(dtype.substr(1, dtype.size() - 2)));
  keys.emplace_back("stochastic_rounding", o.stochastic_rounding ? "true" : "false");
  keys.emplace_back("master_weights", o.master_weights ? "true" : "false");
  keys.emplace_back("seed", std::to_string(o.seed));
  for (const PythonKey& k : kPythonKeys)
    if (r.type == k.optimizer && k.mode) keys.emplace_back(k.key, r.train_mode ? "true" : "false");
  if (r.initial_lr) keys.emplace_back("initial_lr", json::real(*r.initial_lr));
  std::string out;
  for (const auto& [k, v] : keys) out += json::quote(k) + ": " + v + ", ";
  return out;
}

std::string reals(const std::vector<double>& xs) {
  std::string out;
  for (double x : xs) out += (out.empty() ? "" : ", ") + json::real(x);
  return "[" + out + "]";
}

class Writer {
 public:
  /// A reference to the array `a` under the table name `name`.
  std::string array(const std::string& name, const CheckpointArray& a) {
    refs_.push_back({name, a.dtype, a.shape, a.data.data(), a.data.size()});
    return "{\"__array__\": " + json::quote(name) + "}";
  }
  std::string optimizer(const OptimizerRecord& r) {
    std::string state, names;
    for (std::size_t i = 0; i < r.state.size(); ++i) {
      names += (i ? ", " : "") + json::quote(r.param_names.at(i));
      if (!r.state[i]) continue;
      const TensorStateRecord& t = *r.state[i];
      std::string entry = "\"step\": " + std::to_string(t.step);
      for (const auto& [name, value] : t.scalars) entry += ", " + json::quote(name) + ": " + json::real(value);
      for (const CheckpointArray& a : t.arrays)
        entry += ", " + json::quote(a.name) + ": " + array("optimizer/state/" + r.param_names[i] + "/" + a.name, a);
      state += std::string(state.empty() ? "" : ", ") + json::quote(r.param_names[i]) + ": {" + entry + "}";
    }
    return "{\"state\": {" + state + "}, \"param_groups\": [{" + group_keys(r) + "\"params\": [" + names + "]}]}";
  }
  const std::vector<CheckpointArrayRef>& refs() const { return refs_; }

 private:
  std::vector<CheckpointArrayRef> refs_;
};

// ---- reading ---------------------------------------------------------------------------------

class Reader {
 public:
  Reader(const std::string& path, const Checkpoint& ckpt) : path_(path), ckpt_(ckpt) {}

  [[noreturn]] void fail(const std::string& why) const {
    throw CheckpointError("checkpoint '" + path_ + "': " + why);
  }
  /// A tagged single-key object's value, or nullptr.
  static const Value* tagged(const Value& v, const char* tag) {
    return v.is(Value::Kind::Object) && v.members.size() == 1 && v.members[0].first == tag ? &v.members[0].second
                                                                                          : nullptr;
  }
  const CheckpointArray& array(const Value& name, const std::string& what) const {
    if (!name.is(Value::Kind::String)) fail(what + ": malformed array reference");
    if (const CheckpointArray* a = ckpt_.find(name.text)) return *a;
    fail("corrupted: header refers to missing array '" + name.text + "'");
  }
  double number(const Value& v, const std::string& what) const {
    if (v.is_number()) return v.number();
    if (const Value* f = tagged(v, "__float__")) {
      if (f->text == "nan") return std::numeric_limits<double>::quiet_NaN();
      if (f->text == "inf" || f->text == "-inf") return (f->text[0] == '-' ? -1 : 1) * HUGE_VAL;
    }
    if (const Value* s = tagged(v, "__scalar__")) {
      const CheckpointArray& a = array(*s, what);
      if (a.numel() == 1 && a.dtype == "<f8") return *a.as<double>();
      if (a.numel() == 1 && a.dtype == "<f4") return *a.as<float>();
      if (a.numel() == 1 && a.dtype == "<i8") return double(*a.as<int64_t>());
    }
    fail(what + ": expected a number");
  }
  int64_t integer(const Value& v, const std::string& what) const {
    const double x = number(v, what);
    if (v.is(Value::Kind::Int)) return v.integer;
    if (x != std::floor(x) || !(std::abs(x) < 9.2e18)) fail(what + ": expected an integer");
    return int64_t(x);
  }
  const std::vector<Value>& sequence(const Value& v, const std::string& what) const {
    if (v.is(Value::Kind::Array)) return v.items;
    if (const Value* t = tagged(v, "__tuple__"); t && t->is(Value::Kind::Array)) return t->items;
    fail(what + ": expected a list");
  }
  /// A dict's items with their keys as text (int keys of a "__dict__" as decimal).
  std::vector<std::pair<std::string, const Value*>> mapping(const Value& v, const std::string& what) const {
    std::vector<std::pair<std::string, const Value*>> out;
    if (const Value* d = tagged(v, "__dict__")) {
      for (const Value& kv : sequence(*d, what)) {
        if (!kv.is(Value::Kind::Array) || kv.items.size() != 2) fail(what + ": malformed dict");
        const Value& k = kv.items[0];
        out.emplace_back(k.is(Value::Kind::Int) ? std::to_string(k.integer) : k.text, &kv.items[1]);
      }
    } else if (v.is(Value::Kind::Object)) {
      for (const auto& [k, x] : v.members) out.emplace_back(k, &x);
    } else {
      fail(what + ": expected a dict");
    }
    return out;
  }
  const Value& member(const Value& v, const char* key, const std::string& what) const {
    const Value* m = v.is(Value::Kind::Object) ? v.find(key) : nullptr;
    if (!m) fail(what + ": no '" + key + "'");
    return *m;
  }

  OptimizerRecord optimizer(const Value& v, const std::string& type, bool by_name) const {
    OptimizerRecord r;
    r.type = type;
    const std::vector<Value>& groups = sequence(member(v, "param_groups", "optimizer"), "optimizer param_groups");
    if (groups.size() != 1)
      fail("its optimizer has " + std::to_string(groups.size()) + " param groups; a C++ optimizer has one");
    std::vector<std::string> keys;
    for (const auto& [key, value] : mapping(groups[0], "param_groups[0]")) {
      if (key == "params") {
        for (const Value& p : sequence(*value, "param_groups[0]['params']"))
          keys.push_back(p.is(Value::Kind::String) ? p.text : std::to_string(integer(p, "param_groups[0]['params']")));
      } else {
        group_entry(r, key, *value);
      }
    }
    if (by_name) r.param_names = keys;
    r.state.resize(keys.size());
    for (const auto& [key, entry] : mapping(member(v, "state", "optimizer"), "optimizer state")) {
      const std::size_t i = std::size_t(std::find(keys.begin(), keys.end(), key) - keys.begin());
      if (i == keys.size()) fail("optimizer state for parameter '" + key + "', which its param group lacks");
      r.state[i] = tensor(*entry, "optimizer state['" + key + "']");
    }
    return r;
  }

  SchedulerState scheduler(const Value& v, const std::string& type) const {
    SchedulerState s;
    s.type = type;
    s.last_epoch = integer(member(v, "last_epoch", "scheduler"), "scheduler last_epoch");
    for (const Value& x : sequence(member(v, "base_lrs", "scheduler"), "scheduler base_lrs"))
      s.base_lrs.push_back(number(x, "scheduler base_lrs"));
    if (const Value* last = v.find("_last_lr"))
      for (const Value& x : sequence(*last, "scheduler _last_lr")) s.last_lrs.push_back(number(x, "scheduler _last_lr"));
    return s;
  }

 private:
  void group_entry(OptimizerRecord& r, const std::string& key, const Value& value) const {
    const std::string what = "param_groups[0]['" + key + "']";
    auto add = [&](const std::string& name, const Value& x) {
      const ConfigValue::Kind kind = x.is(Value::Kind::Bool) ? ConfigValue::Kind::Boolean
                                     : x.is(Value::Kind::Int) ? ConfigValue::Kind::Integer
                                                              : ConfigValue::Kind::Real;
      r.config.push_back({name, x.is(Value::Kind::Bool) ? double(x.boolean) : number(x, what), kind});
    };
    auto set_none = [&](const group_keys::NoneMeans& n) {
      r.config.push_back({n.field, n.value, n.kind});
    };
    const bool listed = value.is(Value::Kind::Array) || tagged(value, "__tuple__");
    if (const group_keys::Composite* c = group_keys::composite(key); c && listed) {
      const std::vector<Value>& parts = sequence(value, what);
      if (parts.size() < c->min_parts || parts.size() > c->max_parts) fail(what + ": expected " + c->expected);
      for (std::size_t j = 0; j < parts.size(); ++j) {
        const group_keys::NoneMeans* none = group_keys::none_for_field(c->fields[j]);
        if (none && parts[j].is(Value::Kind::Null)) set_none(*none);
        else add(c->fields[j], parts[j]);
      }
      return;
    }
    const group_keys::NoneMeans* none = value.is(Value::Kind::Null) ? group_keys::none_for_key(key) : nullptr;
    const group_keys::Choice* choice = group_keys::choice(key);
    if (const PythonKey* k = python_key(r.type, key); k && k->mode) {
      if (!value.is(Value::Kind::Bool)) fail(what + ": expected a bool");
      r.train_mode = value.boolean;
    } else if (key == "state_dtype") {
      r.options.state_dtype = parse_state_dtype(value.is(Value::Kind::Null) ? "" : value.text);
    } else if (key == "stochastic_rounding" || key == "master_weights") {
      if (!value.is(Value::Kind::Bool)) fail(what + ": expected a bool");
      (key == "master_weights" ? r.options.master_weights : r.options.stochastic_rounding) = value.boolean;
    } else if (key == "seed") {
      r.options.seed = uint64_t(integer(value, what));
    } else if (key == "initial_lr") {
      r.initial_lr = number(value, what);
    } else if (choice) {
      const int i = value.is(Value::Kind::Null) && choice->none_is_first ? 0
                    : value.is(Value::Kind::String)                       ? group_keys::choice_index(*choice, value.text)
                                                                          : -1;
      if (i < 0) fail(what + ": expected " + group_keys::choice_expected(*choice));
      r.config.push_back({choice->field, double(i), choice->kind});
    } else if (none) {
      set_none(*none);
    } else if (value.is_number() || value.is(Value::Kind::Bool) || tagged(value, "__float__") ||
               tagged(value, "__scalar__")) {
      add(key, value);
    }  // anything else (torch's "name", "foreach": None, ...) is kept by Python and read by no one
  }

  TensorStateRecord tensor(const Value& v, const std::string& what) const {
    TensorStateRecord t;
    for (const auto& [key, x] : mapping(v, what)) {
      const std::string where = what + "['" + key + "']";
      if (key == "step") {
        t.step = integer(*x, where);
      } else if (const Value* name = tagged(*x, "__array__")) {
        CheckpointArray a = array(*name, where);
        a.name = key;
        t.arrays.push_back(std::move(a));
      } else {
        t.scalars.emplace_back(key, number(*x, where));
      }
    }
    return t;
  }

  const std::string& path_;
  const Checkpoint& ckpt_;
};

std::string type_of(const Value& header, const char* key) {
  const Value* types = header.find("types");
  const Value* t = types && types->is(Value::Kind::Object) ? types->find(key) : nullptr;
  return t && t->is(Value::Kind::String) ? t->text : "";
}

}  // namespace

void write_training_checkpoint(const std::string& path, const TrainingCheckpoint& c) {
  Writer w;
  std::string contents, types;
  if (c.optimizer) {
    contents += "\"optimizer\": " + w.optimizer(*c.optimizer);
    types += "\"optimizer\": " + json::quote(c.optimizer->type);
  }
  if (c.scheduler) {
    const SchedulerState& s = *c.scheduler;
    contents += std::string(contents.empty() ? "" : ", ") + "\"scheduler\": {\"base_lrs\": " + reals(s.base_lrs) +
                ", \"last_epoch\": " + std::to_string(s.last_epoch) + ", \"_step_count\": " +
                std::to_string(s.last_epoch + 1) + ", \"_last_lr\": " + reals(s.last_lrs) + "}";
    if (!s.type.empty()) types += std::string(types.empty() ? "" : ", ") + "\"scheduler\": " + json::quote(s.type);
  }
  std::string params;
  for (const CheckpointArray& a : c.params)
    params += (params.empty() ? "" : ", ") + json::quote(a.name) + ": " + w.array("params/" + a.name, a);
  contents += std::string(contents.empty() ? "" : ", ") + "\"params\": {" + params + "}";
  const std::string header = std::string("{\"format\": \"dlopt-checkpoint\", \"version\": 1, \"writer\": \"dlopt ") +
                             DLOPT_VERSION + " (C++)\", \"types\": {" + types +
                             "}, \"optimizer_keys\": \"name\", \"contents\": {" + contents + "}}";
  write_checkpoint(path, header, w.refs());
}

TrainingCheckpoint read_training_checkpoint(const std::string& path) {
  const Checkpoint ckpt = read_checkpoint(path);
  Value header;
  try {
    header = json::parse(ckpt.header_json);
  } catch (const std::runtime_error& e) {
    throw CheckpointError("corrupted checkpoint '" + path + "': header is not JSON (" + e.what() + ")");
  }
  const Reader read(path, ckpt);
  const Value* format = header.find("format");
  if (!format || format->text != "dlopt-checkpoint") read.fail("header does not describe a dlopt checkpoint");
  const Value& contents = read.member(header, "contents", "header");
  TrainingCheckpoint c;
  if (const Value* params = contents.find("params"))
    for (const auto& [name, v] : read.mapping(*params, "params")) {
      const Value* ref = Reader::tagged(*v, "__array__");
      if (!ref) read.fail("params['" + name + "']: not an array");
      CheckpointArray a = read.array(*ref, "params['" + name + "']");
      a.name = name;
      c.params.push_back(std::move(a));
    }
  const Value* keys = header.find("optimizer_keys");
  if (const Value* opt = contents.find("optimizer"))
    c.optimizer = read.optimizer(*opt, type_of(header, "optimizer"), keys && keys->text == "name");
  if (const Value* sched = contents.find("scheduler")) c.scheduler = read.scheduler(*sched, type_of(header, "scheduler"));
  return c;
}

}  // namespace dlopt
