#include "client/local_farm.h"

#include "base/file.h"
#include "base/subprocess.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include <csignal>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace thinfarm {

namespace {

// An open lock file; the lock goes with the descriptor.
struct LockFile {
  int fd = -1;
  explicit LockFile(const std::string &path)
      : fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {}
  ~LockFile() {
    if (fd >= 0)
      ::close(fd);
  }
};

std::string slurp(const std::string &path) {
  auto text = readFile(path);
  return text.ok() ? std::move(*text) : std::string();
}

// Whether a daemon holds CACHE/daemon.lock and is ready (its pid is written).
bool daemonRunning(const std::string &lockPath) {
  LockFile f(lockPath);
  if (f.fd < 0)
    return false;
  if (::flock(f.fd, LOCK_EX | LOCK_NB) == 0)
    return false; // we got it: nobody holds it (closing releases it)
  return errno == EWOULDBLOCK && !slurp(lockPath).empty();
}

// Stops the daemon holding lockPath (its pid is in the file) and waits until
// it let go of the lock.
Status stopDaemon(const std::string &lockPath) {
  pid_t pid = static_cast<pid_t>(std::atol(slurp(lockPath).c_str()));
  if (pid > 1)
    ::kill(pid, SIGTERM);
  for (int i = 0; i < 3000; ++i) {
    if (!daemonRunning(lockPath))
      return ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return failed("the local coordinator of another thinfarm build (pid " + std::to_string(pid) +
                ") does not stop");
}

} // namespace

std::string defaultCacheDir() {
  if (const char *d = std::getenv("THINFARM_CACHE_DIR"); d && *d)
    return d;
  if (const char *x = std::getenv("XDG_CACHE_HOME"); x && *x)
    return std::string(x) + "/thinfarm";
  if (const char *h = std::getenv("HOME"); h && *h)
    return std::string(h) + "/.cache/thinfarm";
  return "/tmp/thinfarm-cache-" + std::to_string(::getuid());
}

std::string configValueIn(std::string_view text, std::string_view name) {
  std::string_view rest = text;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    if (auto hash = line.find('#'); hash != std::string_view::npos)
      line = line.substr(0, hash);
    auto eq = line.find('=');
    if (eq == std::string_view::npos)
      continue;
    auto trim = [](std::string_view s) {
      while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
      while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
      return s;
    };
    if (trim(line.substr(0, eq)) == name)
      return std::string(trim(line.substr(eq + 1)));
  }
  return "";
}

std::string configValue(std::string_view name) {
  std::string path;
  if (const char *x = std::getenv("XDG_CONFIG_HOME"); x && *x)
    path = std::string(x) + "/thinfarm/config";
  else if (const char *h = std::getenv("HOME"); h && *h)
    path = std::string(h) + "/.config/thinfarm/config";
  if (path.empty())
    return "";
  auto read = readFile(path);
  if (!read.ok())
    return "";
  return configValueIn(*read, name);
}

std::string runningLocalCoordinator(const std::string &cacheDir) {
  std::error_code ec;
  std::string dir = std::filesystem::absolute(cacheDir, ec).lexically_normal().string();
  return daemonRunning(dir + "/daemon.lock") ? "ipc://" + dir + "/coordinator.sock" : "";
}

Result<std::string> ensureLocalCoordinator(const LocalFarm &farm) {
  std::error_code ec;
  std::filesystem::create_directories(farm.cacheDir, ec);
  if (ec)
    return failed("cannot create the cache directory " + farm.cacheDir + ": " + ec.message());
  std::string dir = std::filesystem::absolute(farm.cacheDir).lexically_normal().string();
  std::string sock = dir + "/coordinator.sock";
  if (sock.size() > 100) // sun_path holds 108 bytes
    return failed("the cache directory's path is too long for a socket: " + dir);
  std::string endpoint = "ipc://" + sock;
  std::string daemonLock = dir + "/daemon.lock";
  std::string idFile = dir + "/daemon.id";
  if (daemonRunning(daemonLock) && slurp(idFile) == farm.identity)
    return endpoint;

  LockFile start(dir + "/start.lock");
  if (start.fd < 0 || ::flock(start.fd, LOCK_EX) != 0)
    return failed("cannot lock " + dir + "/start.lock");
  if (daemonRunning(daemonLock)) {
    if (slurp(idFile) == farm.identity) // another thinfarm-ld started it meanwhile
      return endpoint;
    TF_CHECK(stopDaemon(daemonLock));
  }
  TF_CHECK(writeFile(idFile, farm.identity));
  unsigned slots = farm.slots ? farm.slots : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::string> args = {farm.coordinator,
                                   "--listen",
                                   endpoint,
                                   "--store",
                                   dir + "/store",
                                   "--local-slots",
                                   std::to_string(slots),
                                   "--idle-exit",
                                   std::to_string(farm.idleExit.count()),
                                   "--lock",
                                   daemonLock,
                                   "--max-size",
                                   farm.maxSize};
  std::string log = dir + "/coordinator.log";
  // A daemon of its own: new session, no terminal, output to its log.
  TF_CHECK(spawnDaemon(args, log));
  // Ready when it holds its lock (it takes it after binding the socket);
  // looked for every 2 ms: a first link waits for nothing else.
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
       std::chrono::steady_clock::now() < until;) {
    if (daemonRunning(daemonLock))
      return endpoint;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return failed("the local coordinator did not start (see " + log + ")");
}

} // namespace thinfarm
