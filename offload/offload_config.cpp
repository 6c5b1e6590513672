// The TOML schema of OffloadConfig: one table of keys, each with a setter that validates and a
// printer. Parsing, flag overrides and --print all go through that table.
#include "offload/offload_config.h"

#include <fmt/format.h>

#include <toml++/toml.h>
#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>

#include "common/error.h"
#include "common/units.h"

namespace cs {
namespace {

// A value from TOML (typed) or from the command line (text, converted on demand).
struct Value {
  enum Type { kString, kInt, kFloat, kBool } type = kString;
  std::string s;
  int64_t i = 0;
  double d = 0;
  bool b = false;
  bool cli = false;
};

// Thrown by the getters; the caller adds file/line/column or the flag.
struct Bad {
  std::string what;
};

std::string type_name(const Value& v) {
  switch (v.type) {
    case Value::kString:
      return "a string";
    case Value::kInt:
      return "an integer";
    case Value::kFloat:
      return "a number";
    case Value::kBool:
      return "a boolean";
  }
  return "?";
}

int64_t get_int(const Value& v, int64_t lo, int64_t hi) {
  int64_t x = 0;
  if (v.type == Value::kInt) {
    x = v.i;
  } else if (v.cli) {
    size_t pos = 0;
    try {
      x = std::stoll(v.s, &pos);
    } catch (...) {
      pos = 0;
    }
    if (pos == 0 || pos != v.s.size()) throw Bad{fmt::format("expected an integer, got '{}'", v.s)};
  } else {
    throw Bad{fmt::format("expected an integer, got {}", type_name(v))};
  }
  if (x < lo || x > hi)
    throw Bad{fmt::format("expected an integer in {} .. {}, got {}", lo, hi, x)};
  return x;
}

double get_double(const Value& v, double lo, double hi) {
  double x = 0;
  if (v.type == Value::kFloat) {
    x = v.d;
  } else if (v.type == Value::kInt) {
    x = double(v.i);
  } else if (v.cli) {
    size_t pos = 0;
    try {
      x = std::stod(v.s, &pos);
    } catch (...) {
      pos = 0;
    }
    if (pos == 0 || pos != v.s.size()) throw Bad{fmt::format("expected a number, got '{}'", v.s)};
  } else {
    throw Bad{fmt::format("expected a number, got {}", type_name(v))};
  }
  if (!(x >= lo && x <= hi))
    throw Bad{fmt::format("expected a number in {} .. {}, got {}", lo, hi, x)};
  return x;
}

bool get_bool(const Value& v) {
  if (v.type == Value::kBool) return v.b;
  if (v.cli && (v.s == "true" || v.s == "1" || v.s == "on")) return true;
  if (v.cli && (v.s == "false" || v.s == "0" || v.s == "off")) return false;
  throw Bad{fmt::format("expected true or false, got {}", v.cli ? "'" + v.s + "'" : type_name(v))};
}

std::string get_string(const Value& v) {
  if (v.type != Value::kString) throw Bad{fmt::format("expected a string, got {}", type_name(v))};
  return v.s;
}

uint64_t get_bytes(const Value& v) {
  if (v.type == Value::kInt) {
    if (v.i < 0) throw Bad{fmt::format("expected a size, got {}", v.i)};
    return uint64_t(v.i);
  }
  if (v.type != Value::kString)
    throw Bad{fmt::format("expected a size such as \"22GiB\", got {}", type_name(v))};
  try {
    return parse_bytes(v.s, "size");
  } catch (const Error&) {
    throw Bad{fmt::format("expected a size such as \"22GiB\" or \"512MiB\", got '{}'", v.s)};
  }
}

double get_rate(const Value& v) {
  if (v.type == Value::kInt || v.type == Value::kFloat) return get_double(v, 0, 1e15);
  if (v.type != Value::kString)
    throw Bad{fmt::format("expected a rate such as \"25GB/s\", got {}", type_name(v))};
  try {
    return parse_rate(v.s, "rate");
  } catch (const Error&) {
    throw Bad{fmt::format("expected a rate such as \"25GB/s\", got '{}'", v.s)};
  }
}

template <typename T>
T get_enum(const Value& v, std::optional<T> (*parse)(std::string_view), const char* choices) {
  const std::string s = get_string(v);
  const auto x = parse(s);
  if (!x) throw Bad{fmt::format("expected one of {}, got '{}'", choices, s)};
  return *x;
}

std::optional<PolicyKind> parse_runtime_policy(std::string_view s) {
  auto k = parse_policy_kind(s);
  if (k == PolicyKind::kBelady)
    return std::nullopt;  // the simulator's oracle, not a runtime policy
  return k;
}

std::string quote(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o + "\"";
}

std::string bytes_str(uint64_t b) {
  if (b == 0) return "\"0\"";
  for (auto [unit, shift] : {std::pair{"GiB", 30}, {"MiB", 20}, {"KiB", 10}})
    if (b % (1ull << shift) == 0) return fmt::format("\"{}{}\"", b >> shift, unit);
  return fmt::format("\"{}\"", b);
}

struct Key {
  const char* section;
  const char* name;
  std::function<void(OffloadConfig&, const Value&)> set;
  std::function<std::string(const OffloadConfig&)> print;
};

const std::vector<Key>& schema() {
  static const std::vector<Key> keys = {
      // [offload]
      {"offload", "mode",
       [](OffloadConfig& c, const Value& v) {
         c.offload.mode = get_enum<OffloadMode>(v, parse_offload_mode, "hybrid, cpu, stream");
       },
       [](const OffloadConfig& c) { return quote(offload_mode_name(c.offload.mode)); }},
      {"offload", "calibrate",
       [](OffloadConfig& c, const Value& v) { c.offload.calibrate = get_bool(v); },
       [](const OffloadConfig& c) { return std::string(c.offload.calibrate ? "true" : "false"); }},
      {"offload", "adapt",
       [](OffloadConfig& c, const Value& v) { c.offload.adapt = get_double(v, 0, 1); },
       [](const OffloadConfig& c) { return fmt::format("{}", c.offload.adapt); }},
      {"offload", "device_timing",
       [](OffloadConfig& c, const Value& v) { c.offload.device_timing = get_bool(v); },
       [](const OffloadConfig& c) {
         return std::string(c.offload.device_timing ? "true" : "false");
       }},
      // [device]
      {"device", "backend",
       [](OffloadConfig& c, const Value& v) {
         const std::string s = get_string(v);
         if (s != "auto" && s != "cuda" && s != "cpu")
           throw Bad{fmt::format("expected one of auto, cuda, cpu, got '{}'", s)};
         c.device.backend = s;
       },
       [](const OffloadConfig& c) { return quote(c.device.backend); }},
      {"device", "gpu",
       [](OffloadConfig& c, const Value& v) { c.device.gpu = int(get_int(v, 0, 64)); },
       [](const OffloadConfig& c) { return std::to_string(c.device.gpu); }},
      {"device", "vram_budget",
       [](OffloadConfig& c, const Value& v) { c.device.vram_budget = get_bytes(v); },
       [](const OffloadConfig& c) { return bytes_str(c.device.vram_budget); }},
      {"device", "reserve",
       [](OffloadConfig& c, const Value& v) { c.device.reserve = get_bytes(v); },
       [](const OffloadConfig& c) { return bytes_str(c.device.reserve); }},
      {"device", "context",
       [](OffloadConfig& c, const Value& v) { c.device.context = int(get_int(v, 0, 1 << 22)); },
       [](const OffloadConfig& c) { return std::to_string(c.device.context); }},
      {"device", "max_batch",
       [](OffloadConfig& c, const Value& v) { c.device.max_batch = int(get_int(v, 1, 1 << 16)); },
       [](const OffloadConfig& c) { return std::to_string(c.device.max_batch); }},
      {"device", "kv_dtype",
       [](OffloadConfig& c, const Value& v) {
         const std::string s = get_string(v);
         if (s != "auto" && !kv_dtype_named(s))
           throw Bad{fmt::format("expected one of auto, f32, f16, bf16, got '{}'", s)};
         c.device.kv_dtype = s;
       },
       [](const OffloadConfig& c) { return quote(c.device.kv_dtype); }},
      {"device", "copy_rate",
       [](OffloadConfig& c, const Value& v) { c.device.copy_rate = get_rate(v); },
       [](const OffloadConfig& c) {
         return c.device.copy_rate > 0 ? fmt::format("\"{:.6g}GB/s\"", c.device.copy_rate / 1e9)
                                       : std::string("0");
       }},
      // [memory]
      {"memory", "host_budget",
       [](OffloadConfig& c, const Value& v) {
         c.memory.host_budget = v.type == Value::kString && v.s == "all" ? 0 : get_bytes(v);
       },
       [](const OffloadConfig& c) {
         return c.memory.host_budget ? bytes_str(c.memory.host_budget) : std::string("\"all\"");
       }},
      {"memory", "pin", [](OffloadConfig& c, const Value& v) { c.memory.pin = get_bool(v); },
       [](const OffloadConfig& c) { return std::string(c.memory.pin ? "true" : "false"); }},
      {"memory", "pin_chunk",
       [](OffloadConfig& c, const Value& v) {
         const uint64_t b = get_bytes(v);
         if (b < (1u << 20)) throw Bad{"expected at least 1MiB"};
         c.memory.pin_chunk = b;
       },
       [](const OffloadConfig& c) { return bytes_str(c.memory.pin_chunk); }},
      {"memory", "numa",
       [](OffloadConfig& c, const Value& v) {
         if (v.type == Value::kString && v.s == "auto")
           c.memory.numa_node = -1;
         else if (v.type == Value::kString && v.s == "off")
           c.memory.numa_node = -2;
         else if (v.type == Value::kInt || v.cli)
           c.memory.numa_node = int(get_int(v, 0, 1023));
         else
           throw Bad{
               fmt::format("expected \"auto\", \"off\" or a node number, got {}", type_name(v))};
       },
       [](const OffloadConfig& c) {
         return c.memory.numa_node == -1   ? std::string("\"auto\"")
                : c.memory.numa_node == -2 ? std::string("\"off\"")
                                           : std::to_string(c.memory.numa_node);
       }},
      // [cache]
      {"cache", "policy",
       [](OffloadConfig& c, const Value& v) {
         c.cache.policy = get_enum<PolicyKind>(v, parse_runtime_policy, "lru, lfu, router_freq");
       },
       [](const OffloadConfig& c) { return quote(policy_name(c.cache.policy)); }},
      {"cache", "allocation",
       [](OffloadConfig& c, const Value& v) {
         c.cache.allocation =
             get_enum<SlotAllocation>(v, parse_slot_allocation, "global, per_layer");
       },
       [](const OffloadConfig& c) { return quote(slot_allocation_name(c.cache.allocation)); }},
      {"cache", "decay",
       [](OffloadConfig& c, const Value& v) {
         const double d = get_double(v, 0, 1);
         if (d <= 0) throw Bad{"expected a number in (0, 1]"};
         c.cache.decay = d;
       },
       [](const OffloadConfig& c) { return fmt::format("{}", c.cache.decay); }},
      {"cache", "hot_set",
       [](OffloadConfig& c, const Value& v) { c.cache.hot_set = get_string(v); },
       [](const OffloadConfig& c) { return quote(c.cache.hot_set); }},
      {"cache", "host_policy",
       [](OffloadConfig& c, const Value& v) {
         c.cache.host_policy =
             get_enum<PolicyKind>(v, parse_runtime_policy, "lru, lfu, router_freq");
       },
       [](const OffloadConfig& c) { return quote(policy_name(c.cache.host_policy)); }},
      {"cache", "prefetch_share",
       [](OffloadConfig& c, const Value& v) { c.cache.prefetch_share = get_double(v, 0, 1); },
       [](const OffloadConfig& c) { return fmt::format("{}", c.cache.prefetch_share); }},
      {"cache", "prefetch_copies",
       [](OffloadConfig& c, const Value& v) { c.cache.prefetch_copies = int(get_int(v, 0, 4096)); },
       [](const OffloadConfig& c) { return std::to_string(c.cache.prefetch_copies); }},
      // [predictor]
      {"predictor", "kind",
       [](OffloadConfig& c, const Value& v) {
         c.predictor.kind =
             get_enum<PredictorKind>(v, parse_predictor_kind, "none, lookahead, coactivation");
       },
       [](const OffloadConfig& c) { return quote(predictor_name(c.predictor.kind)); }},
      {"predictor", "horizon",
       [](OffloadConfig& c, const Value& v) { c.predictor.horizon = int(get_int(v, 1, 16)); },
       [](const OffloadConfig& c) { return std::to_string(c.predictor.horizon); }},
      {"predictor", "threshold",
       [](OffloadConfig& c, const Value& v) { c.predictor.threshold = get_double(v, 0, 1); },
       [](const OffloadConfig& c) { return fmt::format("{}", c.predictor.threshold); }},
      {"predictor", "top_k",
       [](OffloadConfig& c, const Value& v) { c.predictor.top_k = int(get_int(v, 0, 1024)); },
       [](const OffloadConfig& c) { return std::to_string(c.predictor.top_k); }},
      // [io]
      {"io", "queue_depth",
       [](OffloadConfig& c, const Value& v) { c.io.queue_depth = int(get_int(v, 1, 4096)); },
       [](const OffloadConfig& c) { return std::to_string(c.io.queue_depth); }},
      {"io", "direct_io", [](OffloadConfig& c, const Value& v) { c.io.direct_io = get_bool(v); },
       [](const OffloadConfig& c) { return std::string(c.io.direct_io ? "true" : "false"); }},
      {"io", "read_size",
       [](OffloadConfig& c, const Value& v) {
         const uint64_t b = get_bytes(v);
         if (b == 0 || b % 4096 || b > (64u << 20))
           throw Bad{fmt::format("expected a multiple of 4KiB up to 64MiB, got {}", b)};
         c.io.read_size = b;
       },
       [](const OffloadConfig& c) { return bytes_str(c.io.read_size); }},
      {"io", "retries",
       [](OffloadConfig& c, const Value& v) { c.io.retries = int(get_int(v, 0, 100)); },
       [](const OffloadConfig& c) { return std::to_string(c.io.retries); }},
      {"io", "register_buffers",
       [](OffloadConfig& c, const Value& v) { c.io.register_buffers = get_bool(v); },
       [](const OffloadConfig& c) {
         return std::string(c.io.register_buffers ? "true" : "false");
       }},
      // [cpu]
      {"cpu", "threads",
       [](OffloadConfig& c, const Value& v) { c.cpu.threads = int(get_int(v, 0, 4096)); },
       [](const OffloadConfig& c) { return std::to_string(c.cpu.threads); }},
      {"cpu", "cores",
       [](OffloadConfig& c, const Value& v) {
         const std::string s = get_string(v);
         try {
           parse_core_list(s, "");
         } catch (const Error& e) {
           throw Bad{e.what()};
         }
         c.cpu.cores = s;
       },
       [](const OffloadConfig& c) { return quote(c.cpu.cores); }},
      {"cpu", "spin_us",
       [](OffloadConfig& c, const Value& v) { c.cpu.spin_us = int(get_int(v, 0, 1000000)); },
       [](const OffloadConfig& c) { return std::to_string(c.cpu.spin_us); }},
      {"cpu", "prefetch",
       [](OffloadConfig& c, const Value& v) { c.cpu.prefetch = int(get_int(v, 0, 65536)); },
       [](const OffloadConfig& c) { return std::to_string(c.cpu.prefetch); }},
  };
  return keys;
}

// Keys that were renamed: an error naming the replacement.
const char* renamed_key(std::string_view section, std::string_view name) {
  if (section == "cache" && name == "miss_path")
    return "cache.miss_path was replaced by offload.mode (hybrid, cpu or stream; CLI "
           "--offload-mode)";
  return nullptr;
}

const Key* find_key(std::string_view section, std::string_view name) {
  for (const Key& k : schema())
    if (section == k.section && name == k.name) return &k;
  return nullptr;
}

std::string section_keys(std::string_view section) {
  std::string s;
  for (const Key& k : schema())
    if (section == k.section) s += (s.empty() ? "" : ", ") + std::string(k.name);
  return s;
}

std::string sections() {
  std::string s;
  for (const Key& k : schema())
    if (s.find(k.section) == std::string::npos)
      s += (s.empty() ? "" : ", ") + std::string(k.section);
  return s;
}

Value from_node(const toml::node& n) {
  Value v;
  if (auto s = n.as_string()) {
    v.type = Value::kString;
    v.s = s->get();
  } else if (auto i = n.as_integer()) {
    v.type = Value::kInt;
    v.i = i->get();
  } else if (auto d = n.as_floating_point()) {
    v.type = Value::kFloat;
    v.d = d->get();
  } else if (auto b = n.as_boolean()) {
    v.type = Value::kBool;
    v.b = b->get();
  } else {
    throw Bad{"expected a string, number or boolean"};
  }
  return v;
}

[[noreturn]] void fail_at(const std::string& origin, const toml::source_region& r,
                          const std::string& msg) {
  fail(ErrorKind::kInvalidArgument, "{}:{}:{}: {}", origin, r.begin.line, r.begin.column, msg);
}

}  // namespace

void parse_offload_config(std::string_view text, const std::string& origin, OffloadConfig& config) {
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    fail_at(origin, e.source(), std::string(e.description()));
  }
  OffloadConfig c = config;
  for (auto&& [section, node] : root) {
    const std::string sec(section.str());
    if (!node.is_table() || sections().find(sec) == std::string::npos || section_keys(sec).empty())
      fail_at(origin, section.source(),
              fmt::format("unknown {} '{}' (sections: {})", node.is_table() ? "section" : "key",
                          sec, sections()));
    for (auto&& [key, value] : *node.as_table()) {
      const std::string name(key.str());
      const Key* k = find_key(sec, name);
      if (const char* r = renamed_key(sec, name); !k && r) fail_at(origin, key.source(), r);
      if (!k)
        fail_at(origin, key.source(),
                fmt::format("unknown key '{}.{}' (keys of [{}]: {})", sec, name, sec,
                            section_keys(sec)));
      try {
        k->set(c, from_node(value));
      } catch (const Bad& b) {
        fail_at(origin, value.source(), fmt::format("{}.{}: {}", sec, name, b.what));
      }
    }
  }
  config = c;
}

void load_offload_config(const std::string& path, OffloadConfig& config) {
  std::ifstream in(path);
  if (!in) fail(ErrorKind::kNotFound, "{}: cannot open the configuration file", path);
  std::stringstream ss;
  ss << in.rdbuf();
  parse_offload_config(ss.str(), path, config);
}

std::vector<HotSetEntry> load_hot_set_file(const std::string& path, int n_layers, int n_experts) {
  std::ifstream in(path);
  if (!in) fail(ErrorKind::kNotFound, "{}: cannot open the hot-set profile (cache.hot_set)", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_hot_set(ss.str(), path, n_layers, n_experts);
}

void set_offload_key(OffloadConfig& config, const std::string& key, const std::string& value,
                     const std::string& flag) {
  const size_t dot = key.find('.');
  const Key* k =
      dot == std::string::npos ? nullptr : find_key(key.substr(0, dot), key.substr(dot + 1));
  if (!k && dot != std::string::npos)
    if (const char* r = renamed_key(key.substr(0, dot), key.substr(dot + 1)))
      fail(ErrorKind::kInvalidArgument, "{}: {}", flag, r);
  if (!k) fail(ErrorKind::kInvalidArgument, "{}: unknown configuration key '{}'", flag, key);
  Value v;
  v.s = value;
  v.cli = true;
  try {
    k->set(config, v);
  } catch (const Bad& b) {
    fail(ErrorKind::kInvalidArgument, "{}: {}", flag, b.what);
  }
}

std::string format_offload_config(const OffloadConfig& config) {
  std::string out, section;
  for (const Key& k : schema()) {
    if (section != k.section) {
      section = k.section;
      out += fmt::format("{}[{}]\n", out.empty() ? "" : "\n", section);
    }
    out += fmt::format("{} = {}\n", k.name, k.print(config));
  }
  return out;
}

std::vector<std::string> offload_config_keys() {
  std::vector<std::string> out;
  for (const Key& k : schema()) out.push_back(std::string(k.section) + "." + k.name);
  return out;
}

CpuBackendOptions cpu_options(const CpuConfig& c) {
  CpuBackendOptions o;
  o.threads = c.threads;
  o.cores = parse_core_list(c.cores, "cpu.cores");
  o.spin_us = c.spin_us;
  o.prefetch = c.prefetch;
  return o;
}

std::vector<int> parse_core_list(std::string_view text, std::string_view what) {
  constexpr int kMaxCpu = 4096;
  const std::string_view prefix = what.empty() ? "" : what;
  const std::string sep = what.empty() ? "" : ": ";
  auto bad = [&](std::string_view item, std::string_view why) {
    fail(ErrorKind::kInvalidArgument,
         "{}{}expected a core list such as \"0-7,16-23\", got '{}': {} '{}'", prefix, sep, text,
         why, item);
  };
  auto trim = [](std::string_view t) {
    while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
    while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
    return t;
  };
  auto number = [&](std::string_view item, std::string_view t) {
    int v = 0;
    const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc() || p != t.data() + t.size()) bad(item, "not a CPU id:");
    if (v >= kMaxCpu) bad(item, "CPU id out of range (0-4095):");
    return v;
  };
  std::vector<int> out;
  std::vector<bool> seen(kMaxCpu);
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t end = std::min(text.find(',', pos), text.size());
    const std::string_view item = trim(text.substr(pos, end - pos));
    pos = end + 1;
    if (item.empty()) {
      if (text.find_first_not_of(' ') == std::string_view::npos) break;  // "" or spaces: none
      bad(item, "empty item");
    }
    const size_t dash = item.find('-');
    const int a = number(item, trim(item.substr(0, dash)));
    const int b = dash == std::string_view::npos ? a : number(item, trim(item.substr(dash + 1)));
    if (b < a) bad(item, "descending range");
    for (int c = a; c <= b; ++c) {
      if (seen[size_t(c)]) bad(item, fmt::format("CPU {} listed twice, in", c));
      seen[size_t(c)] = true;
      out.push_back(c);
    }
  }
  return out;
}

std::optional<DType> kv_dtype_named(std::string_view name) {
  if (name == "f32") return DType::kF32;
  if (name == "f16") return DType::kF16;
  if (name == "bf16") return DType::kBF16;
  return std::nullopt;
}

}  // namespace cs
