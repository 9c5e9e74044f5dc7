// Test fixtures shared by the unit tests: a temporary directory and a way to
// run the real LLVM tools on what the code under test wrote.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace thinfarm::test {

class ScratchDir {
public:
  ScratchDir() {
    std::string templ = std::filesystem::temp_directory_path().string() + "/thinfarm-test-XXXXXX";
    path_ = mkdtemp(templ.data());
  }
  ~ScratchDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string &name) const { return path_ + "/" + name; }
  std::string write(const std::string &name, const std::string &bytes) const {
    std::ofstream(file(name), std::ios::binary) << bytes;
    return file(name);
  }
  const std::string &path() const { return path_; }

private:
  std::string path_;
};

// A file's whole content ("" when it cannot be read).
inline std::string readAll(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Runs a shell command; returns its stdout, or "<exit N>" on failure.
inline std::string run(const std::string &cmd) {
  std::string out;
  FILE *p = popen(cmd.c_str(), "r");
  if (!p)
    return "<popen failed>";
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p))
    out.append(buf, n);
  int rc = pclose(p);
  if (rc != 0)
    return out + "<exit " + std::to_string(rc) + ">";
  return out;
}

// n bytes of a repeatable, seed-dependent pattern: test blobs that are not
// all one byte, so a misplaced chunk shows.
inline std::string pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>((i * 2654435761u + seed) >> 13);
  return s;
}

} // namespace thinfarm::test
