// bubblewrap's command line for a backend child, and the start-up probe.
#include "worker/sandbox.h"

#include "base/file.h"

#include <cstdlib>
#include <filesystem>

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace thinfarm {

namespace fs = std::filesystem;

namespace {

bool under(const std::string &path, const std::string &dir) {
  return path == dir || path.rfind(dir + "/", 0) == 0;
}

// The sanitizers' options are the one environment a child keeps (a sanitized
// build's backend needs them, and the suppression files they name).
constexpr const char *kKeptEnvironment[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS",
                                            "LSAN_OPTIONS", "MSAN_OPTIONS"};

} // namespace

Result<Sandbox> Sandbox::probe(const std::string &program, const std::string &bwrap) {
  if (::access(bwrap.c_str(), X_OK) != 0)
    return failed(bwrap + " is missing: install bubblewrap (apt-get install bubblewrap)");
  Sandbox s;
  s.bwrap_ = bwrap;
  s.toolchain_ = {"/usr"};
  std::error_code ec;
  fs::path real = fs::canonical(program, ec);
  if (ec)
    return failed("cannot find the backend program " + program + ": " + ec.message());
  for (const fs::path &dir : {real.parent_path(), real.parent_path().parent_path() / "lib"})
    if (!under(dir.string(), "/usr") && fs::is_directory(dir, ec))
      s.toolchain_.push_back(dir.string());

  // The probe runs the program itself inside, so that a toolchain the
  // sandbox hides (a library outside /usr) shows here and not on a job.
  int err = ::memfd_create("bwrap-probe", MFD_CLOEXEC);
  if (err < 0)
    return failed("memfd_create failed");
  SpawnOptions o;
  o.pipeStdout = true;
  o.stderrFile = "/proc/self/fd/" + std::to_string(err);
  auto child = s.spawn({real.string(), "--identity"}, {}, o);
  if (child.ok())
    if (auto out = readAll(child->stdoutFd(), "the probe's output"); out.ok())
      s.identity_ = *out;
  auto status = child.ok() ? child->wait() : Result<int>(child.error());
  std::string why;
  if (::lseek(err, 0, SEEK_SET) == 0)
    if (auto text = readAll(err, "the probe's output"); text.ok())
      why = *text;
  ::close(err);
  while (!why.empty() && why.back() == '\n')
    why.pop_back();
  if (!status.ok())
    return failed("cannot run " + bwrap + ": " + status.error().message);
  if (*status != 0)
    return failed(bwrap + " cannot make a sandbox here (" +
                  (why.empty() ? "exit status " + std::to_string(*status) : why) + ")");
  while (!s.identity_.empty() && s.identity_.back() == '\n')
    s.identity_.pop_back();
  return s;
}

std::vector<std::string> Sandbox::command(const std::vector<std::string> &argv,
                                          const SandboxView &view) const {
  std::vector<std::string> c = {bwrap_,         "--unshare-all",  "--die-with-parent",
                                "--new-session", "--cap-drop",     "ALL",
                                "--clearenv"};
  for (const char *name : kKeptEnvironment) {
    const char *value = std::getenv(name);
    if (!value)
      continue;
    c.insert(c.end(), {"--setenv", name, value});
    std::string v = value;
    if (auto at = v.find("suppressions="); at != std::string::npos) {
      std::string file = v.substr(at + 13, v.find_first_of(": ", at) - at - 13);
      if (!file.empty() && file[0] == '/')
        c.insert(c.end(), {"--ro-bind-try", file, file});
    }
  }
  for (const std::string &dir : toolchain_)
    c.insert(c.end(), {"--ro-bind", dir, dir});
  // /bin, /lib, ... as the host has them: links into /usr, or directories.
  for (const char *top : {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}) {
    struct stat st;
    if (::lstat(top, &st) != 0)
      continue;
    std::error_code ec;
    if (S_ISLNK(st.st_mode))
      c.insert(c.end(), {"--symlink", fs::read_symlink(top, ec).string(), top});
    else if (S_ISDIR(st.st_mode))
      c.insert(c.end(), {"--ro-bind", top, top});
  }
  c.insert(c.end(), {"--proc", "/proc", "--dev", "/dev"});
  for (const std::string &p : view.readOnly)
    c.insert(c.end(), {"--ro-bind", p, p});
  for (const std::string &p : view.writable)
    c.insert(c.end(), {"--bind", p, p});
  c.insert(c.end(), {"--chdir", "/", "--"});
  c.insert(c.end(), argv.begin(), argv.end());
  return c;
}

Result<Subprocess> Sandbox::spawn(const std::vector<std::string> &argv, const SandboxView &view,
                                  SpawnOptions o) const {
  o.searchPath = false;
  return Subprocess::spawn(command(argv, view), o);
}

} // namespace thinfarm
