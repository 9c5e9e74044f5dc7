// Stage 0 (run after stages 1-2): the link memo. A link whose inputs did not
// change at all is answered from the store without running the thin link or a
// single backend.
//
//   key = SHA-256 over (each field framed):
//     "thinfarm link memo v1"
//     the client's secret       an entry answers only the client that wrote
//                               it (or clients sharing its secret file); the
//                               store takes memo entries from clients, so a
//                               shared farm must not let one client's entry
//                               answer another's link
//     toolchain                 memoToolchain(): backend identity, and the
//                               build-ids of lld and of thinfarm-ld
//     the build directory       lld's messages name inputs relative to it, and
//                               they are part of what a hit replays
//     the command line          expanded and classified, as tokens, without
//                               the options that cannot change the output or
//                               what lld prints (thread counts, colours, lld's
//                               own cache)
//     every file the link reads (path, digest) in command-line order: each
//                               input, each member of a thin archive, each
//                               linker script, version script and dynamic list
//
// The files the modules' asm pulls in with .incbin are only known once the
// modules are inspected, which a hit must not need: the entry lists them with
// their digests, and a hit re-hashes them first (as ccache's manifests do).
// A linker script that names further files (INCLUDE, INPUT, GROUP,
// SEARCH_DIR) makes the link unmemoizable rather than half-covered.
//
// A file that changes while the link runs would make the entry describe
// inputs the output was not made from: every hashed file is stat()ed before
// and after, and the entry is not written if any changed.
#include "lto/memo.h"

#include "lto/backend_server.h"
#include "lto/build_id.h"
#include "lto/run.h"

#include <llvm/Support/Program.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

namespace thinfarm {

namespace {

std::optional<FileStamp> stampOf(const std::string &path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return std::nullopt;
  return FileStamp{path, static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
                   static_cast<uint64_t>(st.st_size), static_cast<uint64_t>(st.st_ino)};
}

// Options whose effect a replay cannot reproduce: lld prints to stdout.
bool printsToStdout(std::string_view name) {
  for (std::string_view n : {"y", "trace-symbol", "t", "trace", "print-gc-sections",
                             "print-icf-sections", "print-archive-stats", "print-symbol-order",
                             "verbose", "v", "version", "M", "print-map", "print-memory-usage"})
    if (name == n)
      return true;
  return false;
}

// Options that change neither the output nor what lld prints about it.
bool irrelevant(std::string_view name) {
  for (std::string_view n : {"threads", "thinlto-jobs", "color-diagnostics", "no-color-diagnostics",
                             "error-limit", "thinlto-cache-dir", "thinlto-cache-policy"})
    if (name == n)
      return true;
  return false;
}

// The file an option names, for the options whose file lld reads.
std::optional<std::string> scriptOperand(const Arg &a) {
  if (a.kind == Arg::Kind::Option && (a.option == "script" || a.option == "T" ||
                                      a.option == "version-script" || a.option == "dynamic-list"))
    return a.value;
  return std::nullopt;
}

// Where lld finds a linker script: as given, else under a -L directory.
std::optional<std::string> findScript(const std::string &path, const LinkCommand &cmd) {
  if (::access(path.c_str(), R_OK) == 0)
    return path;
  if (path.empty() || path[0] == '/')
    return std::nullopt;
  for (const std::string &dir : cmd.libraryPaths) {
    std::string p = dir + "/" + path;
    if (::access(p.c_str(), R_OK) == 0)
      return p;
  }
  return std::nullopt;
}

// Whether a script names other files lld would read.
bool pullsInFiles(std::string_view text) {
  std::string word;
  auto check = [&] {
    bool hit = word == "INCLUDE" || word == "INPUT" || word == "GROUP" || word == "SEARCH_DIR";
    word.clear();
    return hit;
  };
  for (char c : text) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') {
      word.push_back(c);
      continue;
    }
    if (check())
      return true;
  }
  return check();
}

struct HashedFile {
  std::string path;
  Blob bytes;
  Digest digest;
};

std::string currentDirectory() {
  std::error_code ec;
  return std::filesystem::current_path(ec).string();
}

Digest fileDigest(const std::string &path) {
  auto bytes = Blob::mapFile(path);
  return bytes ? Digest::of(bytes->bytes()) : Digest{}; // zero: absent
}

} // namespace

Result<std::string> clientSecret(const std::string &cacheDir) {
  std::string path = cacheDir + "/client-secret";
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (auto existing = readFile(path); existing.ok() && existing->size() == 32)
      return *existing;
    std::error_code ec;
    std::filesystem::create_directories(cacheDir, ec);
    std::string secret(32, '\0');
    if (::getrandom(secret.data(), secret.size(), 0) != static_cast<ssize_t>(secret.size()))
      return failed("cannot read random bytes for " + path);
    // Written under a temporary name and linked into place: a concurrent
    // link either sees no secret or a whole one, and exactly one wins.
    std::string tmp = path + ".tmp" + std::to_string(::getpid());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
      return failed("cannot create " + tmp);
    bool written = writeAll(fd, secret, tmp).ok();
    ::close(fd);
    bool linked = written && ::link(tmp.c_str(), path.c_str()) == 0;
    ::unlink(tmp.c_str());
    if (linked)
      return secret;
  }
  return failed("cannot create " + path);
}

std::string memoToolchain(const std::string &lld) {
  std::string lldPath = lld;
  if (lld.find('/') == std::string::npos)
    if (auto found = llvm::sys::findProgramByName(lld))
      lldPath = *found;
  std::error_code ec;
  std::string real = std::filesystem::canonical(lldPath, ec).string();
  return backendIdentity() + " thinfarm-ld/" + buildIdOfFile("/proc/self/exe") + " lld/" +
         (real.empty() ? lldPath : real) + "@" + buildIdOfFile(lldPath);
}

Result<std::optional<MemoKey>> memoKey(const MemoIdentity &id, const LinkCommand &cmd,
                                       const Inputs &inputs, unsigned threads) {
  std::vector<HashedFile> files;
  for (const InputFile &f : inputs.files) {
    files.push_back({f.path, f.bytes, {}});
    if (f.kind == FileKind::Archive && f.archive.thin)
      for (const ArchiveMember &m : f.archive.members)
        files.push_back({m.path, m.bytes, {}});
  }
  for (const Arg &a : cmd.args) {
    if (a.kind != Arg::Kind::Option)
      continue;
    if (printsToStdout(a.option)) {
      return std::optional<MemoKey>();
    }
    auto operand = scriptOperand(a);
    if (!operand)
      continue;
    auto found = findScript(*operand, cmd);
    if (!found) {
      return std::optional<MemoKey>();
    }
    TF_TRY(Blob bytes, Blob::mapFile(*found));
    if (pullsInFiles(bytes.bytes())) {
      return std::optional<MemoKey>();
    }
    files.push_back({*found, std::move(bytes), {}});
  }

  MemoKey key;
  for (const HashedFile &f : files) {
    auto stamp = stampOf(f.path);
    if (!stamp) {
      return std::optional<MemoKey>();
    }
    key.stamps.push_back(*stamp);
  }
  std::vector<size_t> order(files.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  parallelFor(order, threads,
              [&](size_t i) { files[i].digest = Digest::of(files[i].bytes.bytes()); });

  DigestBuilder h;
  h.updateText("thinfarm link memo v1");
  h.updateText(id.secret);
  h.updateText(id.toolchain);
  h.updateText(currentDirectory());
  for (const Arg &a : cmd.args) {
    if (a.kind == Arg::Kind::Option && irrelevant(a.option))
      continue;
    h.updateU64(a.tokens.size());
    for (const std::string &t : a.tokens)
      h.updateText(t);
  }
  h.updateU64(files.size());
  for (const HashedFile &f : files) {
    h.updateText(f.path);
    h.updateDigest(f.digest);
  }
  key.key = h.finish();
  return std::optional<MemoKey>(std::move(key));
}

Result<std::optional<std::string>> replayMemo(FarmClient &farm, const MemoKey &key,
                                              const std::string &output) {
  auto lookup = farm.lookupLink(key.key);
  if (!lookup.ok() && (lookup.error().kind == ErrorKind::Disconnected ||
                       lookup.error().kind == ErrorKind::Overloaded))
    return std::move(lookup).error();
  if (!lookup.ok())
    return std::optional<std::string>();
  std::optional<wire::LinkMemo> &memo = *lookup;
  if (!memo)
    return std::optional<std::string>();
  for (const wire::FileRef &f : memo->incbins)
    if (!wire::staysInside(f.path) || fileDigest(f.path) != f.content)
      return std::optional<std::string>(); // the asm pulls in a file that changed: a miss
  auto bytes = farm.fetch(memo->output);
  if (!bytes.ok())
    return std::optional<std::string>(); // damaged or gone: the link runs, and records it anew
  std::string tmp = output + ".thinfarm-tmp";
  mode_t mask = ::umask(0);
  ::umask(mask);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return std::optional<std::string>();
  // Permission bits only: a memo entry never makes a set-id or sticky file.
  bool written = writeAll(fd, *bytes, tmp).ok() && ::fchmod(fd, memo->mode & ~mask & 0777) == 0;
  written = ::close(fd) == 0 && written;
  if (!written || ::rename(tmp.c_str(), output.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return std::optional<std::string>();
  }
  return std::optional<std::string>(std::move(memo->transcript));
}

void recordMemo(FarmClient &farm, const MemoKey &key, const std::string &output,
                const std::vector<std::string> &incbins, const std::string &transcript) {
  for (const FileStamp &s : key.stamps)
    if (stampOf(s.path) != s)
      return; // an input changed while the link ran: the entry would lie
  auto bytes = Blob::mapFile(output);
  struct stat st;
  if (!bytes || ::stat(output.c_str(), &st) != 0)
    return;
  wire::RecordLink memo;
  memo.key = key.key;
  memo.found = true;
  memo.output = Digest::of(bytes->bytes());
  for (const std::string &path : incbins) {
    if (!wire::staysInside(path))
      return; // a replay checks only files inside the build directory
    memo.incbins.push_back({path, fileDigest(path)});
  }
  memo.transcript = transcript;
  memo.mode = st.st_mode & 0777;
  if (Status s = farm.recordLink(memo, bytes->bytes()); !s.ok())
    std::fprintf(stderr, "thinfarm-ld: note: cannot record the link memo of %s: %s\n",
                 output.c_str(), s.error().message.c_str());
}

} // namespace thinfarm
