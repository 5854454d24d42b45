// Helpers shared by the tests: where ../shared is, and skipping cleanly without it.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>

namespace shrink::test {

// ../shared beside the source tree (or $SHRINK_SHARED); "" when absent.
inline std::string shared_dir() {
  if (const char* env = std::getenv("SHRINK_SHARED")) return env;
  const std::filesystem::path p = std::filesystem::path(SHRINK_SOURCE_DIR) / ".." / "shared";
  return std::filesystem::exists(p / "assets") ? std::filesystem::canonical(p).string() : "";
}

// Path of a file under ../shared/assets, or "" if it (or ../shared) is missing.
inline std::string asset(const std::string& rel) {
  const std::string d = shared_dir();
  if (d.empty()) return "";
  const std::string p = d + "/assets/" + rel;
  return std::filesystem::exists(p) ? p : "";
}

// A fresh empty directory for a test's outputs.
inline std::string temp_dir(const std::string& name) {
  const auto p = std::filesystem::temp_directory_path() / ("shrink_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

}  // namespace shrink::test

// Skips the current test, saying which asset is missing, when ../shared is absent.
#define SHRINK_REQUIRE_ASSET(var, rel)                                                          \
  const std::string var = ::shrink::test::asset(rel);                                           \
  if (var.empty()) GTEST_SKIP() << "needs ../shared/assets/" << (rel) << " (not present: skipped)"

#include "io/model_file.h"

namespace shrink::test {
inline LoadOptions with_tokenizer() {
  LoadOptions o;
  o.require_tokenizer = true;
  return o;
}
}  // namespace shrink::test
