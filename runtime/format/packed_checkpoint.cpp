// A packed file as conversion input: re-quantize it with another policy, or export it as GGUF.
#include "common/error.h"
#include "runtime/format/checkpoint.h"
#include "runtime/format/packed_reader.h"

namespace cs {
namespace {

class PackedCheckpoint final : public Checkpoint {
 public:
  explicit PackedCheckpoint(const std::string& path) : file_(path) { file_.verify_resident(); }
  const ModelConfig& config() const override { return file_.config(); }
  const std::string& origin() const override { return file_.path(); }
  std::string kind() const override { return "packed"; }
  std::unique_ptr<SourceMatrix> open(const WeightId& id) const override {
    if (weight_class(id.role) != WeightClass::kExperts) {
      MatView v = file_.tensor(canonical_name(id));
      if (v.empty() && id.role == WeightRole::kLmHead)
        v = file_.tensor(canonical_name({WeightRole::kEmbed}));
      if (v.empty())
        fail(ErrorKind::kNotFound, "{}: missing tensor '{}'", file_.path(), canonical_name(id));
      return matview_source(v);
    }
    const std::vector<int>& layers = file_.index().moe_layers;
    size_t m = 0;
    while (m < layers.size() && layers[m] != id.layer) ++m;
    if (m == layers.size() || id.expert < 0 || id.expert >= config().n_experts)
      fail(ErrorKind::kNotFound, "{}: no expert {} in layer {}", file_.path(), id.expert, id.layer);
    file_.verify_expert(m, id.expert);
    const ExpertWeights w = file_.expert(m, id.expert);
    return matview_source(id.role == WeightRole::kExpertGate ? w.gate
                          : id.role == WeightRole::kExpertUp ? w.up
                                                             : w.down);
  }
  std::optional<TokenizerBlob> tokenizer() const override {
    auto t = file_.tokenizer_blob();
    if (!t) return std::nullopt;
    return TokenizerBlob{std::string(t->kind), std::string(t->bytes)};
  }
  nlohmann::json chat() const override { return file_.chat(); }

 private:
  PackedFile file_;
};

}  // namespace

std::unique_ptr<Checkpoint> open_packed_checkpoint(const std::string& path) {
  return std::make_unique<PackedCheckpoint>(path);
}

}  // namespace cs
