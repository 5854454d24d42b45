#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "core/cpu.h"

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

int64_t path_bytes(const std::string& p) {
  if (!std::filesystem::is_directory(p)) return static_cast<int64_t>(std::filesystem::file_size(p));
  int64_t n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(p))
    if (e.is_regular_file()) n += static_cast<int64_t>(e.file_size());
  return n;
}

}  // namespace shrink::cli
