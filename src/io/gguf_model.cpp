// GGUF <-> ModelFile (placeholder).
#include "core/error.h"
#include "io/model_file.h"

namespace shrink {
ModelFile load_gguf_model(const std::string& path) { fail(path, ": GGUF is not supported yet"); }
void save_gguf_model(const ModelFile&, const std::string& path) { fail(path, ": GGUF writing is not supported yet"); }
}  // namespace shrink
namespace shrink {
Vocab load_gguf_vocab(const std::string& path) { fail(path, ": GGUF is not supported yet"); }
}  // namespace shrink
