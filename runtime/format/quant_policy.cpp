#include "runtime/format/quant_policy.h"

#include <fmt/format.h>

#include <toml++/toml.h>
#include <charconv>

#include "common/error.h"

namespace cs {
namespace {

constexpr WeightClass kClasses[] = {
    WeightClass::kExperts, WeightClass::kAttention, WeightClass::kEmbeddings, WeightClass::kLmHead,
    WeightClass::kDense,   WeightClass::kNorm,      WeightClass::kRouter};

}  // namespace

std::string format_name(const TensorFormat& f) {
  switch (f.dtype) {
    case DType::kQ4:
      return fmt::format("q4{}/{}", f.asymmetric ? "-asym" : "", f.group);
    case DType::kQ8:
      return fmt::format("q8/{}", f.group);
    case DType::kBF16:
      return "bf16";
    case DType::kF16:
      return "f16";
    case DType::kF32:
      return "f32";
  }
  return "?";
}

TensorFormat parse_tensor_format(std::string_view text, std::string_view what) {
  auto bad = [&]() {
    fail(ErrorKind::kInvalidArgument,
         "{}: '{}' is not a tensor format (expected q4/G, q4-asym/G, q8/G with G = 32, 64 or 128, "
         "or bf16, f16, f32)",
         what, text);
  };
  TensorFormat f;
  if (text == "bf16") return {DType::kBF16, 0, false};
  if (text == "f16") return {DType::kF16, 0, false};
  if (text == "f32") return {DType::kF32, 0, false};
  const size_t slash = text.find('/');
  const std::string_view kind = text.substr(0, slash);
  if (kind == "q4") {
    f.dtype = DType::kQ4;
  } else if (kind == "q4-asym") {
    f.dtype = DType::kQ4;
    f.asymmetric = true;
  } else if (kind == "q8") {
    f.dtype = DType::kQ8;
  } else {
    bad();
  }
  f.group = 32;
  if (slash != std::string_view::npos) {
    const std::string_view g = text.substr(slash + 1);
    auto [p, ec] = std::from_chars(g.data(), g.data() + g.size(), f.group);
    if (ec != std::errc() || p != g.data() + g.size()) bad();
  }
  if (f.group != 32 && f.group != 64 && f.group != 128) bad();
  return f;
}

TensorFormat& QuantPolicy::of(WeightClass c) {
  switch (c) {
    case WeightClass::kExperts:
      return experts;
    case WeightClass::kAttention:
      return attention;
    case WeightClass::kEmbeddings:
      return embeddings;
    case WeightClass::kLmHead:
      return lm_head;
    case WeightClass::kDense:
      return dense;
    case WeightClass::kNorm:
      return norms;
    case WeightClass::kRouter:
      return routers;
  }
  return experts;
}

const TensorFormat& QuantPolicy::of(WeightClass c) const {
  return const_cast<QuantPolicy*>(this)->of(c);
}

void QuantPolicy::set(std::string_view class_name, std::string_view format, std::string_view what) {
  for (WeightClass c : kClasses) {
    if (class_name == weight_class_name(c)) {
      of(c) = parse_tensor_format(format, what);
      return;
    }
  }
  fail(ErrorKind::kInvalidArgument,
       "{}: unknown weight class '{}' (expected experts, attention, embeddings, lm_head, dense, "
       "norms or routers)",
       what, class_name);
}

void QuantPolicy::load_toml(const std::string& path) {
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    fail(ErrorKind::kInvalidArgument, "{}: malformed TOML: {}", path, std::string(e.description()));
  }
  for (const auto& [key, value] : t) {
    const std::string k(key.str());
    const std::string where = fmt::format("{}: key '{}'", path, k);
    if (k == "keep_native") {
      if (!value.is_boolean()) fail(ErrorKind::kInvalidArgument, "{} must be true or false", where);
      keep_native = value.as_boolean()->get();
      continue;
    }
    if (!value.is_string())
      fail(ErrorKind::kInvalidArgument, "{} must be a string such as \"q4/32\"", where);
    set(k, value.as_string()->get(), where);
  }
  validate();
}

void QuantPolicy::validate() const {
  for (WeightClass c : {WeightClass::kNorm, WeightClass::kRouter}) {
    const DType d = of(c).dtype;
    if (d != DType::kF32 && d != DType::kBF16)
      fail(ErrorKind::kInvalidArgument, "{}: format {} is not allowed (expected f32 or bf16)",
           weight_class_name(c), format_name(of(c)));
  }
}

std::string QuantPolicy::describe() const {
  std::string s;
  for (WeightClass c : kClasses)
    s += fmt::format("{}{}={}", s.empty() ? "" : " ", weight_class_name(c), format_name(of(c)));
  return s;
}

TensorFormat fit_format(TensorFormat f, int64_t cols, std::string* note) {
  if (f.dtype != DType::kQ4 && f.dtype != DType::kQ8) return f;
  const TensorFormat wanted = f;
  while (f.group > 32 && cols % f.group != 0) f.group /= 2;
  if (cols % f.group != 0) f = {DType::kBF16, 0, false};
  if (note && !(f == wanted))
    *note = fmt::format("{} columns do not fit {}: stored as {}", cols, format_name(wanted),
                        format_name(f));
  return f;
}

}  // namespace cs
