// What the fuzz targets share: a scratch directory per process, and the one
// way a target reports a broken invariant (abort with a line, which libFuzzer
// records as a crash with the input that caused it).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace thinfarm::fuzz {

// A bug, not bad input: print why and abort (a finding).
[[noreturn]] inline void fail(const std::string &why) {
  std::fprintf(stderr, "fuzz invariant broken: %s\n", why.c_str());
  std::abort();
}

// A directory of this process's own under $TMPDIR, removed at exit. libFuzzer
// runs many inputs in one process: a target makes it once (a function-local
// static, the one piece of process state a target keeps).
class ScratchDir {
public:
  ScratchDir() {
    std::string templ = std::filesystem::temp_directory_path().string() + "/thinfarm-fuzz-XXXXXX";
    if (!mkdtemp(templ.data()))
      fail("cannot create a scratch directory in " + templ);
    path_ = templ;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir &) = delete;
  ScratchDir &operator=(const ScratchDir &) = delete;
  const std::string &path() const { return path_; }
  std::string write(const std::string &name, std::string_view bytes) const {
    std::string file = path_ + "/" + name;
    std::ofstream(file, std::ios::binary | std::ios::trunc).write(bytes.data(),
                                                                   static_cast<std::streamsize>(bytes.size()));
    return file;
  }

private:
  std::string path_;
};

inline std::string_view asText(const uint8_t *data, size_t size) {
  return {reinterpret_cast<const char *>(data), size};
}

} // namespace thinfarm::fuzz
