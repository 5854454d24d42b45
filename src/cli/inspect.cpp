// shrink inspect MODEL — architecture, parameters, tensors, dtypes, bytes, bits per weight.
#include <cstdio>
#include <map>

#include "cli/commands.h"

namespace shrink::cli {

namespace {
struct InspectArgs {
  ModelArgs m;
  bool tensors = false;
};

void run_inspect(const InspectArgs& a) {
  ModelFile f = open_model(a.m, false);
  const ModelConfig& c = f.config;
  int64_t params = 0, bytes = 0;
  std::map<std::string, std::pair<int64_t, int64_t>> by_type;  // dtype -> (params, bytes)
  for (const auto& [name, t] : f.tensors) {
    params += t.numel();
    bytes += t.nbytes();
    auto& e = by_type[std::string(dtype_name(t.dtype))];
    e.first += t.numel();
    e.second += t.nbytes();
  }
  std::printf("model:        %s (%s)\n", f.path.c_str(), f.format.c_str());
  std::printf("architecture: %s\n", c.summary().c_str());
  std::printf("norm eps %g, rope theta %g, rope scale %g, rope %s\n", c.norm_eps, c.rope_theta, c.rope_scale,
              c.rope_style == RopeStyle::Interleaved ? "interleaved" : "neox");
  std::printf("parameters:   %lld (%.3f M)\n", (long long)params, params / 1e6);
  std::printf("weights:      %s, %.3f bits per weight\n", human_bytes(double(bytes)).c_str(), 8.0 * bytes / params);
  for (const auto& [t, e] : by_type)
    std::printf("  %-6s %12lld params  %s\n", t.c_str(), (long long)e.first, human_bytes(double(e.second)).c_str());
  std::map<std::string, int> schemes;  // compressed-tensors linears by scheme
  for (const auto& [_, s] : f.packed) ++schemes[s.name()];
  for (const auto& [_, s] : f.int8) ++schemes[s.name()];
  for (const auto& [name, n] : schemes) std::printf("quantized:    %d linears %s\n", n, name.c_str());
  // shrink's compressed sparse linears (docs/pruning.md): named by their tensors' suffixes.
  std::map<std::string, int> sparse;  // format -> linears
  const auto has_suffix = [](const std::string& s, const std::string& x) {
    return s.size() > x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  for (const auto& [name, t] : f.tensors) {
    if (has_suffix(name, ".weight.mask_bits")) ++sparse["bitmask f32 (mask_bits/mask_val/mask_meta)"];
    if (has_suffix(name, ".weight.nm_meta") && t.numel() == 3)
      ++sparse[std::to_string(t.ptr<const int32_t>()[0]) + ":" + std::to_string(t.ptr<const int32_t>()[1]) + " " +
               std::string(dtype_name(f.get(name.substr(0, name.size() - 5) + "_val").dtype)) + " (nm_val/nm_idx/nm_meta)"];
  }
  for (const auto& [name, n] : sparse) std::printf("sparse:       %d linears %s\n", n, name.c_str());
  if (f.tokenizer)
    std::printf("tokenizer:    %s, %d tokens (bos %d, eos %d)\n", f.tokenizer->kind().c_str(), f.tokenizer->vocab_size(),
                f.tokenizer->bos_id(), f.tokenizer->eos_id());
  else
    std::printf("tokenizer:    none found (use --tokenizer FILE)\n");
  if (!a.tensors) return;
  std::printf("\n%-32s %-6s %-16s %12s\n", "tensor", "dtype", "shape", "bytes");
  for (const auto& [name, t] : f.tensors)
    std::printf("%-32s %-6s %-16s %12lld\n", name.c_str(), std::string(dtype_name(t.dtype)).c_str(),
                shape_str(t.shape).c_str(), (long long)t.nbytes());
}
}  // namespace

void add_inspect(CLI::App& app) {
  auto a = std::make_shared<InspectArgs>();
  auto* cmd = app.add_subcommand("inspect", "Show a model's architecture, parameters, tensors, dtypes and size");
  add_model_args(cmd, a->m);
  cmd->add_flag("--tensors", a->tensors, "List every tensor");
  cmd->callback([a] { run_inspect(*a); });
}

}  // namespace shrink::cli
