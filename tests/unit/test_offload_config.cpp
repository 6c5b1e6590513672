// The TOML configuration: every key parses, unknown keys and bad values are errors with line and
// column, flags override, and the printed effective config parses back to the same config.
#include <doctest/doctest.h>

#include <fstream>
#include <iterator>

#include "common/error.h"
#include "kernels/cpu/thread_pool.h"
#include "offload/offload_config.h"

using namespace cs;

namespace {

std::string error_of(const std::string& text) {
  OffloadConfig c;
  try {
    parse_offload_config(text, "cfg.toml", c);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("offload config: values from TOML") {
  OffloadConfig c;
  parse_offload_config(R"(
[offload]
device_timing = true
[device]
vram_budget = "22GiB"
copy_rate = "25GB/s"
[memory]
host_budget = "100GiB"
numa = 1
[cache]
policy = "lfu"
allocation = "per_layer"
prefetch_copies = 2
[predictor]
kind = "coactivation"
horizon = 2
threshold = 0.1
[io]
queue_depth = 64
direct_io = false
read_size = "1MiB"
[cpu]
threads = 16
cores = "0-15"
spin_us = 1000
prefetch = 4096
)",
                       "cfg.toml", c);
  CHECK(c.device.vram_budget == 22ull << 30);
  CHECK(c.device.copy_rate == doctest::Approx(25e9));
  CHECK(c.memory.host_budget == 100ull << 30);
  CHECK(c.memory.numa_node == 1);
  CHECK(c.cache.policy == PolicyKind::kLfu);
  CHECK(c.cache.allocation == SlotAllocation::kPerLayer);
  CHECK(c.cache.prefetch_copies == 2);
  CHECK(c.predictor.kind == PredictorKind::kCoactivation);
  CHECK(c.predictor.horizon == 2);
  CHECK(c.io.queue_depth == 64);
  CHECK_FALSE(c.io.direct_io);
  CHECK(c.io.read_size == 1u << 20);
  CHECK(c.cpu.threads == 16);
  CHECK(c.cpu.spin_us == 1000);
  CHECK(c.cpu.prefetch == 4096);
  CHECK(c.offload.device_timing);
  CHECK(c.cache.decay == 0.9);  // untouched keys keep their defaults
}

TEST_CASE("offload config: unknown keys and bad values name the line and column") {
  CHECK(error_of("[cache]\npolcy = \"lru\"\n") ==
        "cfg.toml:2:1: unknown key 'cache.polcy' (keys of [cache]: policy, allocation, decay, "
        "hot_set, host_policy, prefetch_share, prefetch_copies)");
  CHECK(error_of("[cache]\npolicy = \"mru\"\n") ==
        "cfg.toml:2:10: cache.policy: expected one of lru, lfu, router_freq, got 'mru'");
  CHECK(error_of("[cache]\npolicy = \"belady\"\n").find("expected one of") != std::string::npos);
  CHECK(error_of("[io]\nqueue_depth = 0\n") ==
        "cfg.toml:2:15: io.queue_depth: expected an integer in 1 .. 4096, got 0");
  CHECK(error_of("[io]\nqueue_depth = \"8\"\n").find("expected an integer, got a string") !=
        std::string::npos);
  CHECK(error_of("[device]\nvram_budget = \"lots\"\n").find("cfg.toml:2:15: device.vram_budget") ==
        0);
  CHECK(error_of("[gpu]\nx = 1\n").find("cfg.toml:1:2: unknown section 'gpu'") == 0);
  CHECK(error_of("policy = \"lru\"\n").find("unknown key 'policy'") != std::string::npos);
  CHECK(error_of("[cache\n").find("cfg.toml:1:") == 0);  // TOML syntax errors too
  CHECK(error_of("[cache]\ndecay = 0\n").find("(0, 1]") != std::string::npos);
}

// The [cpu] table reaches the CPU experts' pool (and bench-offload's DRAM probe, built from the
// same two calls) whole: a field dropped on the way ran the probe on other cores than the experts.
TEST_CASE("offload config: cpu_options and pool_options carry the [cpu] table to the thread pool") {
  CpuConfig c;
  c.threads = 3;
  c.cores = "0-2";
  c.spin_us = 50;
  c.prefetch = 512;
  const CpuBackendOptions o = cpu_options(c);
  CHECK(o.threads == 3);
  CHECK(o.cores == std::vector<int>{0, 1, 2});
  CHECK(o.spin_us == 50);
  CHECK(o.prefetch == 512);
  const ThreadPoolOptions p = pool_options(o);
  CHECK(p.threads == 3);
  CHECK(p.cores == o.cores);
  CHECK(p.spin_us == 50);
  CHECK(p.numa_node == o.numa_node);
}

TEST_CASE("offload config: cpu.cores lists parse fully or name the bad item") {
  CHECK(parse_core_list("0-3, 8,10 - 11", "x") == std::vector<int>{0, 1, 2, 3, 8, 10, 11});
  CHECK(parse_core_list("", "x").empty());
  CHECK(parse_core_list("5", "x") == std::vector<int>{5});
  // Each of these passed the old character check and failed later: "5-" and "," as an internal
  // error ("stoi") when the session started, "3-1" as an empty list.
  for (const char* bad : {"5-", ",", "3-1", "1,1", "0-2,2", "4096", "1,,2", "-1", "a"}) {
    CAPTURE(bad);
    try {
      parse_core_list(bad, "cpu.cores");
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).starts_with("cpu.cores: expected a core list"));
    }
  }
  CHECK(error_of("[cpu]\ncores = \"5-\"\n")
            .starts_with("cfg.toml:2:9: cpu.cores: expected a core list"));
  CHECK(error_of("[cpu]\ncores = \"3-1\"\n").find("descending range '3-1'") != std::string::npos);
  CHECK(error_of("[cpu]\ncores = \"1,1\"\n").find("CPU 1 listed twice") != std::string::npos);
}

TEST_CASE("offload config: offload.mode, and the key it replaced names it") {
  OffloadConfig c;
  CHECK(c.offload.mode == OffloadMode::kHybrid);  // the default
  parse_offload_config("[offload]\nmode = \"cpu\"\n", "cfg.toml", c);
  CHECK(c.offload.mode == OffloadMode::kCpu);
  set_offload_key(c, "offload.mode", "stream", "--offload-mode");
  CHECK(c.offload.mode == OffloadMode::kStream);
  CHECK(error_of("[offload]\nmode = \"gpu\"\n") ==
        "cfg.toml:2:8: offload.mode: expected one of hybrid, cpu, stream, got 'gpu'");
  CHECK(error_of("[cache]\nmiss_path = \"cpu\"\n") ==
        "cfg.toml:2:1: cache.miss_path was replaced by offload.mode (hybrid, cpu or stream; CLI "
        "--offload-mode)");
  try {
    set_offload_key(c, "cache.miss_path", "cpu", "--miss-path");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("--miss-path: cache.miss_path was replaced by offload.mode") !=
          std::string::npos);
  }
}

TEST_CASE("offload config: flags override and the printed config round-trips") {
  OffloadConfig c;
  set_offload_key(c, "cache.policy", "lru", "--policy");
  set_offload_key(c, "device.vram_budget", "5GiB", "--vram-budget");
  set_offload_key(c, "io.direct_io", "false", "--direct-io");
  set_offload_key(c, "predictor.horizon", "2", "--horizon");
  CHECK(c.cache.policy == PolicyKind::kLru);
  CHECK(c.device.vram_budget == 5ull << 30);
  CHECK_FALSE(c.io.direct_io);
  CHECK_THROWS_WITH_AS(set_offload_key(c, "predictor.horizon", "two", "--horizon"),
                       "--horizon: expected an integer, got 'two'", Error);
  CHECK_THROWS_WITH_AS(set_offload_key(c, "cache.nope", "1", "--set"),
                       "--set: unknown configuration key 'cache.nope'", Error);
  c.cache.hot_set = "a \"quoted\" path";
  c.memory.numa_node = -2;
  c.device.copy_rate = 12.5e9;
  const std::string printed = format_offload_config(c);
  OffloadConfig d;
  parse_offload_config(printed, "printed", d);
  CHECK(format_offload_config(d) == printed);
  CHECK(d.cache.hot_set == c.cache.hot_set);
  CHECK(offload_config_keys().size() >= 25);
}

TEST_CASE("offload config: the example configs parse") {
  for (const char* name :
       {"rtx4090-24gb-64gb-ram.toml", "rtx4090-24gb-128gb-ram.toml", "rtx6000ada-48gb.toml"}) {
    CAPTURE(name);
    OffloadConfig c;
    load_offload_config(std::string(CS_FIXTURES_DIR) + "/../../configs/" + name, c);
    CHECK(c.device.vram_budget > 0);
  }
}

TEST_CASE("offload config: docs/CONFIG.md documents every key") {
  std::ifstream in(std::string(CS_FIXTURES_DIR) + "/../../docs/CONFIG.md");
  REQUIRE(in);
  const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const std::string& key : offload_config_keys()) {
    CAPTURE(key);
    const std::string section = "## [" + key.substr(0, key.find('.')) + "]";
    const std::string row = "| `" + key.substr(key.find('.') + 1) + "` |";
    const size_t at = doc.find(section);
    REQUIRE(at != std::string::npos);
    const size_t next = doc.find("\n## ", at + 1);
    CHECK(doc.substr(at, next - at).find(row) != std::string::npos);
  }
}
