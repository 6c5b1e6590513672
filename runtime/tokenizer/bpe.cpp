#include "runtime/tokenizer/bpe.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <unordered_map>

#include "common/error.h"
#include "runtime/tokenizer/pretokenizer.h"
#include "runtime/tokenizer/utf8.h"

namespace cs {

namespace {

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68 bytes
// take the code points 256, 257, ... in byte order.
struct ByteLevelTables {
  std::array<char32_t, 256> to_cp{};
  std::array<int16_t, 512> from_cp{};  // code point -> byte, -1 for none (all lie below 324)
  ByteLevelTables() {
    from_cp.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      to_cp[b] = printable ? char32_t(b) : next++;
      from_cp[to_cp[b]] = int16_t(b);
    }
  }
};

const ByteLevelTables& tables() {
  static const ByteLevelTables t;
  return t;
}

// (left id, right id) -> (rank, merged id), open addressing with linear probing.
class PairTable {
 public:
  struct Value {
    int32_t rank = -1, id = -1;
  };
  explicit PairTable(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
  }
  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  void prefetch(uint64_t k) const { __builtin_prefetch(&slots_[hash(k) & mask_]); }
  // Keeps the first (lowest-rank) entry of a duplicated pair, as tokenizers does.
  void insert(uint64_t k, Value v) {
    size_t i = hash(k) & mask_;
    while (slots_[i].key != kEmpty) {
      if (slots_[i].key == k) return;
      i = (i + 1) & mask_;
    }
    slots_[i] = {k, v};
  }
  const Value* find(int32_t a, int32_t b) const {
    const uint64_t k = key(a, b);
    size_t i = hash(k) & mask_;
    while (slots_[i].key != kEmpty) {
      if (slots_[i].key == k) return &slots_[i].value;
      i = (i + 1) & mask_;
    }
    return nullptr;
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  // Key and value side by side: a lookup touches one cache line.
  struct Slot {
    uint64_t key = kEmpty;
    Value value;
  };
  static size_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return size_t(k);
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

uint64_t hash_bytes(std::string_view k) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a, then a final mix
  for (char c : k) h = (h ^ uint8_t(c)) * 1099511628211ULL;
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ULL;
  return h ^ (h >> 32);
}

// Token text -> id over a vector of strings owned elsewhere: open addressing on (fingerprint,
// id) pairs, so loading 150k tokens costs no node allocations and a probe rarely touches a
// string it does not want.
class StringIndex {
 public:
  void build(const std::vector<std::string>* keys) {
    keys_ = keys;
    size_t cap = 16;
    while (cap < keys->size() * 2) cap <<= 1;
    slots_.assign(cap, kEmpty);
    mask_ = cap - 1;
    // Batches with prefetch, as for the merges below.
    constexpr int32_t kBatch = 32;
    uint64_t hs[kBatch];
    const int32_t n = int32_t(keys->size());
    for (int32_t id0 = 0; id0 < n; id0 += kBatch) {
      const int32_t nb = std::min(kBatch, n - id0);
      for (int32_t k = 0; k < nb; ++k) {
        hs[k] = hash_bytes((*keys)[id0 + k]);
        prefetch(hs[k]);
      }
      for (int32_t k = 0; k < nb; ++k)
        if (!(*keys)[id0 + k].empty()) insert((*keys)[id0 + k], id0 + k, hs[k]);
    }
  }
  int32_t find(std::string_view k) const { return find(k, hash_bytes(k)); }
  void prefetch(uint64_t h) const { __builtin_prefetch(&slots_[h & mask_]); }
  int32_t find(std::string_view k, uint64_t h) const {
    if (slots_.empty()) return -1;
    const uint32_t fp = uint32_t(h >> 32);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const uint64_t e = slots_[i];
      if (e == kEmpty) return -1;
      const int32_t id = int32_t(uint32_t(e));
      if (uint32_t(e >> 32) == fp && (*keys_)[id] == k) return id;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  void insert(std::string_view k, int32_t id, uint64_t h) {
    const uint32_t fp = uint32_t(h >> 32);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const uint64_t e = slots_[i];
      if (e == kEmpty) {
        slots_[i] = (uint64_t(fp) << 32) | uint32_t(id);
        return;
      }
      // Duplicate text: the first id wins.
      if (uint32_t(e >> 32) == fp && (*keys_)[int32_t(uint32_t(e))] == k) return;
    }
  }
  const std::vector<std::string>* keys_ = nullptr;
  std::vector<uint64_t> slots_;
  size_t mask_ = 0;
};

// Pieces already merged during one encode() call -> their ids (stored in one vector).
class PieceCache {
 public:
  explicit PieceCache(size_t expect) {
    size_t cap = 1024;
    while (cap < expect * 2) cap <<= 1;
    slots_.resize(cap);
    mask_ = cap - 1;
  }
  // Returns the ids of `piece`, or null.
  const int32_t* find(std::string_view piece, uint64_t h, uint32_t* n) const {
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (!s.data) return nullptr;
      if (s.hash == h && s.size == piece.size() && std::memcmp(s.data, piece.data(), s.size) == 0) {
        *n = s.n;
        return ids_.data() + s.off;
      }
    }
  }
  void insert(std::string_view piece, uint64_t h, const int32_t* ids, uint32_t n) {
    if ((used_ + 1) * 2 > slots_.size()) grow();
    place({h, piece.data(), uint32_t(piece.size()), uint32_t(ids_.size()), n});
    ids_.insert(ids_.end(), ids, ids + n);
    ++used_;
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    const char* data = nullptr;
    uint32_t size = 0, off = 0, n = 0;
  };
  void place(const Slot& s) {
    size_t i = s.hash & mask_;
    while (slots_[i].data) i = (i + 1) & mask_;
    slots_[i] = s;
  }
  void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    mask_ = slots_.size() - 1;
    for (const Slot& s : old)
      if (s.data) place(s);
  }
  std::vector<Slot> slots_;
  std::vector<int32_t> ids_;
  size_t mask_ = 0, used_ = 0;
};

}  // namespace

std::string byte_level_encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) utf8::append_code_point(out, tables().to_cp[uint8_t(c)]);
  return out;
}

bool byte_level_decode(std::string_view text, std::string* bytes) {
  bytes->clear();
  bool ok = true;
  size_t i = 0;
  const auto& from = tables().from_cp;
  while (i < text.size()) {
    const uint8_t c = uint8_t(text[i]);
    // Fast path: printable ASCII stands for itself.
    if (c >= '!' && c <= '~') {
      *bytes += char(c);
      ++i;
      continue;
    }
    const size_t start = i;
    if (utf8::valid_sequence_length(text, i) == 0) {
      *bytes += text[i++];
      ok = false;
      continue;
    }
    const char32_t cp = utf8::next_code_point(text, i);
    if (cp >= from.size() || from[cp] < 0) {
      bytes->append(text.substr(start, i - start));
      ok = false;
    } else {
      *bytes += char(from[cp]);
    }
  }
  return ok;
}

struct BpeTokenizer::Impl {
  std::unique_ptr<Pretokenizer> pre;
  AddedTokenMatcher added;
  bool has_normalized_added = false;
  bool nfc = false;
  bool ignore_merges = false;
  PairTable pairs{0};
  std::array<int32_t, 256> byte_id{};
  std::vector<std::string> level;  // id -> token in the byte-level alphabet (added: raw text)
  StringIndex by_level;
  std::unordered_map<std::string, int32_t> added_by_text;
  std::vector<uint8_t> special;  // id -> 1 for control tokens

  void encode_text(std::string_view text, std::vector<int32_t>& out,
                   const BpeTokenizer& self) const;
};

BpeTokenizer::BpeTokenizer(BpeSpec spec, std::string_view origin)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  int32_t n = int32_t(spec.tokens.size());
  for (const AddedToken& t : spec.added) n = std::max(n, t.id + 1);
  bytes_.resize(size_t(n));
  m.special.assign(size_t(n), 0);
  m.level = std::move(spec.tokens);
  m.by_level.build(&m.level);
  for (int32_t id = 0; id < int32_t(m.level.size()); ++id)
    if (!m.level[id].empty()) byte_level_decode(m.level[id], &bytes_[id]);
  for (const AddedToken& t : spec.added) {
    if (t.id < 0)
      fail(ErrorKind::kBadFile, "{}: added token '{}' has a negative id", origin, t.content);
    bytes_[t.id] = t.content;
    m.special[t.id] = t.special ? 1 : 0;
    m.added_by_text[t.content] = t.id;
    m.has_normalized_added |= t.normalized;
  }
  for (int b = 0; b < 256; ++b) {
    const char byte = char(b);
    const int32_t id = m.by_level.find(byte_level_encode(std::string_view(&byte, 1)));
    // Byte-level vocabularies hold all 256 bytes; a missing one is a broken vocabulary.
    if (id < 0)
      fail(ErrorKind::kBadFile,
           "{}: the vocabulary has no token for byte 0x{:02X} (a byte-level BPE vocabulary "
           "needs all 256)",
           origin, b);
    m.byte_id[b] = id;
  }
  m.pairs = PairTable(spec.merges.size());
  // Every lookup here is a cache miss in a table of megabytes: work in batches, prefetching the
  // slots of a whole batch before reading any of them (this halves the load time).
  constexpr size_t kBatch = 32;
  struct Pending {
    std::string_view a, b;
    std::string joined;
    uint64_t ha, hb, hc, key;
    int32_t ia, ib, ic;
  };
  std::vector<Pending> batch(kBatch);
  for (size_t r0 = 0; r0 < spec.merges.size(); r0 += kBatch) {
    const size_t nb = std::min(kBatch, spec.merges.size() - r0);
    for (size_t k = 0; k < nb; ++k) {
      const std::string& mg = spec.merges[r0 + k];
      const size_t sp = mg.find(' ', 1);
      if (sp == std::string::npos || sp + 1 >= mg.size())
        fail(ErrorKind::kBadFile, "{}: merge {} ('{}') is not two tokens separated by a space",
             origin, r0 + k, mg);
      Pending& p = batch[k];
      p.a = std::string_view(mg.data(), sp);
      p.b = std::string_view(mg.data() + sp + 1, mg.size() - sp - 1);
      p.joined.assign(p.a);
      p.joined.append(p.b);
      p.ha = hash_bytes(p.a);
      p.hb = hash_bytes(p.b);
      p.hc = hash_bytes(p.joined);
      m.by_level.prefetch(p.ha);
      m.by_level.prefetch(p.hb);
      m.by_level.prefetch(p.hc);
    }
    for (size_t k = 0; k < nb; ++k) {
      Pending& p = batch[k];
      p.ia = m.by_level.find(p.a, p.ha);
      p.ib = m.by_level.find(p.b, p.hb);
      p.ic = m.by_level.find(p.joined, p.hc);
      if (p.ia < 0 || p.ib < 0 || p.ic < 0)
        fail(ErrorKind::kBadFile, "{}: merge {} ('{}') names a token missing from the vocabulary",
             origin, r0 + k, spec.merges[r0 + k]);
      p.key = PairTable::key(p.ia, p.ib);
      m.pairs.prefetch(p.key);
    }
    for (size_t k = 0; k < nb; ++k) m.pairs.insert(batch[k].key, {int32_t(r0 + k), batch[k].ic});
  }
  if (!spec.pattern.empty()) m.pre = std::make_unique<Pretokenizer>(spec.pattern, origin);
  m.nfc = spec.nfc;
  m.ignore_merges = spec.ignore_merges;
  m.added = AddedTokenMatcher(spec.added);
  set_info(spec.info);
}

BpeTokenizer::~BpeTokenizer() = default;

void BpeTokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  const Impl& m = *impl_;
  if (piece.size() == 1) {
    out.push_back(m.byte_id[uint8_t(piece[0])]);
    return;
  }
  if (m.ignore_merges) {
    const int32_t id = m.by_level.find(byte_level_encode(piece));
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  struct Symbol {
    int32_t id, prev, next;
  };
  struct Merge {
    int32_t rank, pos, id;
    // std::push_heap builds a max-heap: invert so the lowest rank, then lowest pos, is on top.
    bool operator<(const Merge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<Symbol> sym;
  thread_local std::vector<Merge> heap;
  const int32_t n = int32_t(piece.size());
  sym.resize(size_t(n));
  heap.clear();
  for (int32_t i = 0; i < n; ++i) sym[i] = {m.byte_id[uint8_t(piece[i])], i - 1, i + 1};
  sym[n - 1].next = -1;
  for (int32_t i = 0; i + 1 < n; ++i)
    if (const PairTable::Value* v = m.pairs.find(sym[i].id, sym[i + 1].id))
      heap.push_back({v->rank, i, v->id});
  std::make_heap(heap.begin(), heap.end());
  // Hugging Face tokenizers' Word::merge_all: pop the best merge, skip stale entries, merge,
  // then queue the new pairs with the neighbours.
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const Merge top = heap.back();
    heap.pop_back();
    Symbol& s = sym[top.pos];
    if (s.id < 0 || s.next < 0) continue;
    const Symbol right = sym[s.next];
    const PairTable::Value* cur = m.pairs.find(s.id, right.id);
    if (!cur || cur->id != top.id) continue;
    s.id = top.id;
    sym[s.next].id = -1;  // removed
    s.next = right.next;
    if (right.next >= 0) sym[right.next].prev = top.pos;
    if (s.prev >= 0)
      if (const PairTable::Value* v = m.pairs.find(sym[s.prev].id, s.id)) {
        heap.push_back({v->rank, s.prev, v->id});
        std::push_heap(heap.begin(), heap.end());
      }
    if (s.next >= 0)
      if (const PairTable::Value* v = m.pairs.find(s.id, sym[s.next].id)) {
        heap.push_back({v->rank, top.pos, v->id});
        std::push_heap(heap.begin(), heap.end());
      }
  }
  for (int32_t i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

void BpeTokenizer::Impl::encode_text(std::string_view text, std::vector<int32_t>& out,
                                     const BpeTokenizer& self) const {
  std::string norm_buf;
  std::string_view norm = text;
  if (nfc && utf8::needs_nfc(text)) {
    norm_buf = utf8::nfc(text);
    norm = norm_buf;
  }
  auto run = [&](std::string_view t) {
    if (!pre) {
      self.encode_piece(t, out);
      return;
    }
    // Within one call, pieces repeat (words, indentation): remember their ids. Only worth it
    // for longer texts.
    if (t.size() < 256) {
      pre->split(t, [&](size_t b, size_t len) { self.encode_piece(t.substr(b, len), out); });
      return;
    }
    PieceCache cache(t.size() / 64);
    std::vector<int32_t> tmp;
    pre->split(t, [&](size_t b, size_t len) {
      const std::string_view piece = t.substr(b, len);
      if (len > 64) {
        self.encode_piece(piece, out);
        return;
      }
      const uint64_t h = hash_bytes(piece);
      uint32_t n = 0;
      if (const int32_t* ids = cache.find(piece, h, &n)) {
        out.insert(out.end(), ids, ids + n);
        return;
      }
      tmp.clear();
      self.encode_piece(piece, tmp);
      cache.insert(piece, h, tmp.data(), uint32_t(tmp.size()));
      out.insert(out.end(), tmp.begin(), tmp.end());
    });
  };
  if (!has_normalized_added) {
    run(norm);
    return;
  }
  added.split(
      norm, true, true, [&](size_t b, size_t len) { run(norm.substr(b, len)); },
      [&](int32_t id) { out.push_back(id); });
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool parse_special) const {
  const Impl& m = *impl_;
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  std::string clean;
  if (!utf8::is_valid(text)) {
    clean = utf8::sanitize(text);
    text = clean;
  }
  if (m.added.empty()) {
    m.encode_text(text, out, *this);
    return out;
  }
  m.added.split(
      text, parse_special, false,
      [&](size_t b, size_t len) { m.encode_text(text.substr(b, len), out, *this); },
      [&](int32_t id) { out.push_back(id); });
  return out;
}

std::string BpeTokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= int32_t(bytes_.size())) return {};
  return bytes_[id];
}

std::optional<int32_t> BpeTokenizer::token_id(std::string_view piece) const {
  if (auto it = impl_->added_by_text.find(std::string(piece)); it != impl_->added_by_text.end())
    return it->second;
  const int32_t id = impl_->by_level.find(byte_level_encode(piece));
  if (id < 0) return std::nullopt;
  return id;
}

bool BpeTokenizer::is_special(int32_t id) const {
  return id >= 0 && id < int32_t(impl_->special.size()) && impl_->special[id];
}

}  // namespace cs
