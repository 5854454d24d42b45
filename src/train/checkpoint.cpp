#include "train/checkpoint.h"

#include <cstring>

#include "core/error.h"
#include "core/file.h"

namespace shrink::train {

namespace {
constexpr char kMagic[8] = {'S', 'H', 'R', 'K', 'C', 'K', 'P', 'T'};
constexpr uint32_t kVersion = 1;

struct Opened {
  std::shared_ptr<MappedFile> file;
  ByteReader reader;
  nlohmann::json header;
};

Opened open_checkpoint(const std::string& path) {
  SHRINK_CHECK(file_exists(path), path, ": checkpoint not found");
  auto file = MappedFile::open(path);
  ByteReader r(file->data(), file->size(), path);
  const std::string magic = r.read_string(8);
  SHRINK_CHECK(std::memcmp(magic.data(), kMagic, 8) == 0, path, ": not a shrink training checkpoint");
  const uint32_t version = r.read<uint32_t>();
  SHRINK_CHECK(version == kVersion, path, ": checkpoint version ", version, " (this build reads ", kVersion, ")");
  const uint64_t n = r.read<uint64_t>();
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(r.read_string(n));
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": damaged checkpoint header (", e.what(), ")");
  }
  return {file, r, h};
}
}  // namespace

nlohmann::json config_to_json(const ModelConfig& c) {
  return {{"arch", arch_name(c.arch)}, {"dim", c.dim}, {"hidden_dim", c.hidden_dim}, {"n_layers", c.n_layers},
          {"n_heads", c.n_heads}, {"n_kv_heads", c.n_kv_heads}, {"head_dim", c.head_dim},
          {"vocab_size", c.vocab_size}, {"max_seq_len", c.max_seq_len}, {"norm_eps", c.norm_eps},
          {"rope_theta", c.rope_theta}, {"rope_scale", c.rope_scale},
          {"rope_style", c.rope_style == RopeStyle::Neox ? "neox" : "interleaved"},
          {"tied_embeddings", c.tied_embeddings}, {"qkv_bias", c.qkv_bias}, {"name", c.name}};
}

ModelConfig config_from_json(const nlohmann::json& j) {
  ModelConfig c;
  c.arch = parse_arch(j.at("arch").get<std::string>());
  c.dim = j.at("dim");
  c.hidden_dim = j.at("hidden_dim");
  c.n_layers = j.at("n_layers");
  c.n_heads = j.at("n_heads");
  c.n_kv_heads = j.at("n_kv_heads");
  c.head_dim = j.at("head_dim");
  c.vocab_size = j.at("vocab_size");
  c.max_seq_len = j.at("max_seq_len");
  c.norm_eps = j.at("norm_eps");
  c.rope_theta = j.at("rope_theta");
  c.rope_scale = j.at("rope_scale");
  c.rope_style = j.at("rope_style") == "neox" ? RopeStyle::Neox : RopeStyle::Interleaved;
  c.tied_embeddings = j.at("tied_embeddings");
  c.qkv_bias = j.at("qkv_bias");
  c.name = j.value("name", "");
  return c;
}

namespace {
// The per-parameter optimizer slots of the format: AdamW's m and v, or SGD's
// momentum buffer alone.
std::vector<std::vector<float>*> optimizer_slots(Optimizer& opt, size_t k) {
  if (AdamW* a = opt.adamw()) return {&a->first_moments()[k], &a->second_moments()[k]};
  return {&opt.sgd()->momentum_buffers()[k]};
}

size_t optimizer_size(Optimizer& opt) {
  return opt.adamw() ? opt.adamw()->first_moments().size() : opt.sgd()->momentum_buffers().size();
}
}  // namespace

void write_checkpoint(const std::string& path, const nlohmann::json& header_in, const std::vector<Parameter*>& params,
                      Optimizer& opt) {
  nlohmann::json header = header_in;
  header["optimizer"] = opt.name();
  if (AdamW* a = opt.adamw()) header["adam_steps"] = a->steps();
  nlohmann::json names = nlohmann::json::array();
  for (Parameter* p : params) names.push_back({{"name", p->name}, {"shape", p->value.shape}});
  header["parameters"] = names;
  const std::string h = header.dump();
  AtomicWriter w(path);
  w.write(kMagic, 8);
  w.put(kVersion);
  w.put(uint64_t(h.size()));
  w.write(h.data(), h.size());
  SHRINK_CHECK(optimizer_size(opt) == params.size(), "checkpoint: the optimizer holds ", optimizer_size(opt),
               " parameters, not ", params.size());
  for (size_t k = 0; k < params.size(); ++k) {
    const uint64_t n = uint64_t(params[k]->numel());
    w.put(n);
    w.write(params[k]->value.f32(), n * sizeof(float));
    for (std::vector<float>* slot : optimizer_slots(opt, k)) w.write(slot->data(), n * sizeof(float));
  }
  w.commit();
}

nlohmann::json read_checkpoint_header(const std::string& path) { return open_checkpoint(path).header; }

nlohmann::json read_checkpoint(const std::string& path, const std::vector<Parameter*>& params, Optimizer& opt) {
  Opened o = open_checkpoint(path);
  // Checkpoints written before SGD was selectable have no "optimizer": AdamW.
  const std::string saved = o.header.value("optimizer", "adamw");
  SHRINK_CHECK(saved == opt.name(), path, ": the checkpoint holds ", saved, " state, this run uses --optimizer ",
               opt.name(), " (a resumed run keeps its optimizer)");
  const auto& names = o.header.at("parameters");
  SHRINK_CHECK(names.size() == params.size(), path, ": checkpoint has ", names.size(), " parameters, the model ",
               params.size());
  for (size_t k = 0; k < params.size(); ++k) {
    Parameter& p = *params[k];
    SHRINK_CHECK(names[k].at("name") == p.name && names[k].at("shape") == p.value.shape, path, ": parameter ", k,
                 " is ", names[k].dump(), " in the checkpoint but ", p.name, " ", shape_str(p.value.shape),
                 " in the model");
    const uint64_t n = o.reader.read<uint64_t>();
    SHRINK_CHECK(n == uint64_t(p.numel()), path, ": parameter ", p.name, " has ", n, " values");
    std::memcpy(p.value.f32(), o.reader.take(n * 4, "weights"), n * 4);
    for (std::vector<float>* slot : optimizer_slots(opt, k))
      std::memcpy(slot->data(), o.reader.take(n * 4, "optimizer state"), n * 4);
  }
  SHRINK_CHECK(o.reader.remaining() == 0, path, ": ", o.reader.remaining(), " unexpected bytes at the end");
  if (AdamW* a = opt.adamw()) a->set_steps(o.header.at("adam_steps").get<int64_t>());
  return o.header;
}

}  // namespace shrink::train
