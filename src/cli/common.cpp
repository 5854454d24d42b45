#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "core/cpu.h"
#include "core/file.h"

namespace shrink::cli {

void add_model_args(CLI::App* cmd, ModelArgs& a, bool model_positional) {
  if (model_positional)
    cmd->add_option("model", a.model, "Model: HF directory, .gguf file, or llama2.c .bin")->required();
  cmd->add_option("--tokenizer", a.tokenizer,
                  "Tokenizer file (tokenizer.bin, tokenizer.model, tokenizer.json, vocab.json, .gguf); "
                  "default: found beside the model");
  cmd->add_option("-t,--threads", a.threads, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
}

ModelFile open_model(const ModelArgs& a, bool need_tokenizer) {
  set_num_threads(a.threads);
  LoadOptions o;
  o.tokenizer_path = a.tokenizer;
  o.require_tokenizer = need_tokenizer;
  return load_model(a.model, o);
}

void progress_line(const std::string& text, bool final) {
  static const bool tty = isatty(STDERR_FILENO);
  if (tty) {
    std::fprintf(stderr, "\r\033[K%s%s", text.c_str(), final ? "\n" : "");
  } else if (final) {
    std::fprintf(stderr, "%s\n", text.c_str());
  } else {
    // Not a terminal: print progress lines, but not more than ~1 per second.
    static double last = 0;
    const double now = now_seconds();
    if (now - last >= 1.0) {
      std::fprintf(stderr, "%s\n", text.c_str());
      last = now;
    }
  }
  std::fflush(stderr);
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", b, units[u]);
  return buf;
}

bool is_gguf_path(const std::string& p) { return p.size() >= 5 && p.compare(p.size() - 5, 5, ".gguf") == 0; }

// Bytes of a file, or of every file in a directory.
int64_t path_bytes(const std::string& p) {
  if (!std::filesystem::is_directory(p)) return static_cast<int64_t>(std::filesystem::file_size(p));
  int64_t n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(p))
    if (e.is_regular_file()) n += static_cast<int64_t>(e.file_size());
  return n;
}

// Perplexity, KLD and top-1 of a compressed model against the original on
// one text (llama-perplexity's protocol, eval/perplexity.h).
nlohmann::json evaluate_vs_base(Transformer& model, Transformer& base, const ModelFile& f, const std::string& text,
                        eval::PerplexityOptions po) {
  const std::vector<int32_t> tokens = f.tokenizer->encode(read_text_file(text), true);
  po.bos_id = f.tokenizer->bos_id();
  const auto r = eval::perplexity(model, tokens, po, &base, [](int done, int total, double ppl) {
    progress_line("eval: window " + std::to_string(done) + "/" + std::to_string(total) + " PPL " + std::to_string(ppl),
                  done == total);
  });
  std::printf("%s: PPL = %.4f +/- %.5f (base %.4f); KLD = %.6f +/- %.6f; top-1 = %.2f%%\n", text.c_str(), r.ppl,
              r.ppl_err, r.base_ppl, r.kld, r.kld_err, 100 * r.top1);
  return {{"text", text}, {"ctx", po.n_ctx}, {"chunks", r.chunks}, {"ppl", r.ppl}, {"ppl_err", r.ppl_err},
          {"base_ppl", r.base_ppl}, {"kld", r.kld}, {"kld_err", r.kld_err}, {"top1", r.top1}};
}

}  // namespace shrink::cli
