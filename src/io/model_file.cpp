#include "io/model_file.h"

#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/file.h"

namespace shrink {

namespace fs = std::filesystem;

const Tensor* ModelFile::find(const std::string& name) const {
  auto it = tensors.find(name);
  return it == tensors.end() ? nullptr : &it->second;
}

const Tensor& ModelFile::get(const std::string& name) const {
  const Tensor* t = find(name);
  SHRINK_CHECK(t, path, ": tensor '", name, "' is missing");
  return *t;
}

int64_t ModelFile::weight_bytes() const {
  int64_t b = 0;
  for (const auto& [_, t] : tensors) b += t.nbytes();
  return b;
}

namespace {

bool has_gguf_magic(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char magic[4] = {};
  const bool ok = std::fread(magic, 1, 4, f) == 4 && std::memcmp(magic, "GGUF", 4) == 0;
  std::fclose(f);
  return ok;
}

std::string ends_with_name(const std::string& path) { return fs::path(path).filename().string(); }

// Tokenizer files that may sit beside a model, in order of preference.
std::string find_tokenizer_beside(const std::string& model_path, const ModelConfig& c) {
  const fs::path dir = is_directory(model_path) ? fs::path(model_path) : fs::path(model_path).parent_path();
  const std::vector<std::string> candidates = {
      "tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer.bin", "tok" + std::to_string(c.vocab_size) + ".bin"};
  for (const auto& name : candidates) {
    const fs::path p = dir / name;
    if (file_exists(p.string())) return p.string();
  }
  return "";
}

void check_shape(const ModelFile& m, const std::string& name, const std::vector<int64_t>& shape, bool required = true) {
  const Tensor* t = m.find(name);
  const std::string base = name.size() > 7 ? name.substr(0, name.size() - 7) : "";  // without ".weight"
  if (!t && m.packed.count(base)) {  // a pack-quantized linear: its weight_shape stands for the weight
    const std::vector<int64_t> s = packed_weight_shape(m.get(base + ".weight_shape"), m.path + ": " + base);
    SHRINK_CHECK(s == shape, m.path, ": packed weight '", base, "' has shape ", shape_str(s), ", expected ",
                 shape_str(shape));
    return;
  }
  const Tensor* lr_u = t ? nullptr : m.find(name + ".lr_u");
  if (lr_u) {  // a low-rank linear (model/lowrank_weight.h): U {out, r} V {r, in} stand for the weight
    const Tensor& v = m.get(name + ".lr_v");
    SHRINK_CHECK(lr_u->ndim() == 2 && v.ndim() == 2 && shape.size() == 2 && lr_u->dim(0) == shape[0] &&
                     v.dim(1) == shape[1] && lr_u->dim(1) == v.dim(0),
                 m.path, ": low-rank factors of '", name, "' have shapes ", shape_str(lr_u->shape), " and ",
                 shape_str(v.shape), ", expected {", shape[0], ", r} and {r, ", shape[1], "}");
    return;
  }
  if (!t && m.find(name + ".nm_val")) {  // compressed N:M sparse (model/sparse_weight.h): values, indices, meta
    const Tensor& meta = m.get(name + ".nm_meta");
    const Tensor& v = *m.find(name + ".nm_val");
    SHRINK_CHECK(m.find(name + ".nm_idx") && meta.dtype == DType::I32 && meta.numel() == 3 && v.ndim() == 2 &&
                     shape.size() == 2 && v.dim(0) == shape[0] && meta.ptr<const int32_t>()[2] == shape[1],
                 m.path, ": N:M sparse tensors of '", name, "' (values ", shape_str(v.shape),
                 ") do not stand for a weight of shape ", shape_str(shape));
    return;
  }
  if (!t && m.find(name + ".mask_bits")) {  // bitmask sparse (model/sparse_mask_weight.h): bits, values, meta
    const Tensor& meta = m.get(name + ".mask_meta");
    const Tensor& bits = *m.find(name + ".mask_bits");
    SHRINK_CHECK(m.find(name + ".mask_val") && meta.dtype == DType::I32 && meta.numel() == 1 && bits.ndim() == 2 &&
                     shape.size() == 2 && bits.dim(0) == shape[0] && meta.ptr<const int32_t>()[0] == shape[1],
                 m.path, ": bitmask sparse tensors of '", name, "' (bits ", shape_str(bits.shape),
                 ") do not stand for a weight of shape ", shape_str(shape));
    return;
  }
  if (!t) {
    SHRINK_CHECK(!required, m.path, ": tensor '", name, "' is missing");
    return;
  }
  SHRINK_CHECK(t->shape == shape, m.path, ": tensor '", name, "' has shape ", shape_str(t->shape), ", expected ",
               shape_str(shape));
}

}  // namespace

std::shared_ptr<Tokenizer> load_tokenizer_file(const std::string& path, int vocab_size_hint) {
  const std::string name = ends_with_name(path);
  SHRINK_CHECK(file_exists(path), path, ": tokenizer file not found");
  if (has_gguf_magic(path)) return make_tokenizer(load_gguf_vocab(path));
  if (name.size() >= 6 && name.substr(name.size() - 6) == ".model") return load_sentencepiece(path);
  if (name == "vocab.json") {
    const std::string merges = (fs::path(path).parent_path() / "merges.txt").string();
    return make_tokenizer(load_gpt2_vocab(path, merges));
  }
  if (name.size() >= 5 && name.substr(name.size() - 5) == ".json") return make_tokenizer(load_tokenizer_json(path));
  return make_tokenizer(load_llama2c_vocab(path, vocab_size_hint));
}

void check_model_tensors(const ModelFile& m) {
  const ModelConfig& c = m.config;
  const int64_t d = c.dim, V = c.vocab_size;
  const bool gpt2 = c.arch == Arch::GPT2;
  check_shape(m, "token_embd.weight", {V, d});
  check_shape(m, "output_norm.weight", {d});
  if (!c.tied_embeddings) check_shape(m, "output.weight", {V, d});
  if (gpt2) {
    check_shape(m, "output_norm.bias", {d});
    check_shape(m, "position_embd.weight", {c.max_seq_len, d});
  }
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    const int64_t h = c.ffn_dim(l), q = c.q_dim(l), kv = c.kv_dim(l);  // per layer: a pruned model may vary
    check_shape(m, p + "attn_norm.weight", {d});
    check_shape(m, p + "ffn_norm.weight", {d});
    check_shape(m, p + "attn_output.weight", {d, q});
    check_shape(m, p + "ffn_up.weight", {h, d});
    check_shape(m, p + "ffn_down.weight", {d, h});
    if (gpt2) {
      check_shape(m, p + "attn_qkv.weight", {q + 2 * kv, d});
      check_shape(m, p + "attn_qkv.bias", {q + 2 * kv});
      for (auto n : {"attn_norm.bias", "ffn_norm.bias", "attn_output.bias", "ffn_down.bias"}) check_shape(m, p + n, {d});
      check_shape(m, p + "ffn_up.bias", {h});
    } else {
      check_shape(m, p + "attn_q.weight", {q, d});
      check_shape(m, p + "attn_k.weight", {kv, d});
      check_shape(m, p + "attn_v.weight", {kv, d});
      check_shape(m, p + "ffn_gate.weight", {h, d});
      if (c.qkv_bias) {
        check_shape(m, p + "attn_q.bias", {q});
        check_shape(m, p + "attn_k.bias", {kv});
        check_shape(m, p + "attn_v.bias", {kv});
      }
    }
  }
}

ModelFile load_model(const std::string& path, const LoadOptions& opts) {
  SHRINK_CHECK(file_exists(path), path, ": no such file or directory");
  ModelFile m;
  if (is_directory(path)) {
    SHRINK_CHECK(file_exists((fs::path(path) / "config.json").string()), path,
                 ": directory has no config.json (expected a Hugging Face model directory)");
    m = load_hf(path);
  } else if (has_gguf_magic(path)) {
    m = load_gguf_model(path);
  } else {
    m = load_llama2c(path);
  }
  m.config.validate(path);
  check_model_tensors(m);
  if (opts.check_finite)
    for (const auto& [name, t] : m.tensors)
      SHRINK_CHECK(all_finite(t), path, ": tensor '", name, "' contains NaN or Inf values");

  if (!opts.tokenizer_path.empty()) {
    m.tokenizer = load_tokenizer_file(opts.tokenizer_path, m.config.vocab_size);
  } else if (!m.tokenizer) {
    const std::string tok = find_tokenizer_beside(path, m.config);
    if (!tok.empty()) m.tokenizer = load_tokenizer_file(tok, m.config.vocab_size);
  }
  SHRINK_CHECK(m.tokenizer || !opts.require_tokenizer, path,
               ": no tokenizer found beside the model; name one with --tokenizer FILE");
  if (m.tokenizer)
    SHRINK_CHECK(m.tokenizer->vocab_size() <= m.config.vocab_size, path, ": tokenizer has ",
                 m.tokenizer->vocab_size(), " tokens but the model's vocabulary is ", m.config.vocab_size);
  return m;
}

}  // namespace shrink
