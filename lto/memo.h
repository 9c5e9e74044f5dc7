#pragma once

#include "client/client.h"
#include "lto/expand.h"

#include <optional>

namespace thinfarm {

// A file the memo key covers, as it was when it was hashed.
struct FileStamp {
  std::string path;
  int64_t mtimeNs = 0;
  uint64_t size = 0, inode = 0;
  friend bool operator==(const FileStamp &, const FileStamp &) = default;
};

struct MemoKey {
  Digest key;
  std::vector<FileStamp> stamps; // every file hashed into the key
};

// Who is asking and with what: the parts of the key that are not the link's.
struct MemoIdentity {
  std::string secret;    // the client's secret (clientSecret())
  std::string toolchain; // memoToolchain()
};

// The client's secret, created on first use in the cache directory (mode 0600).
Result<std::string> clientSecret(const std::string &cacheDir);

// The identity of everything that decides a link's output besides its inputs:
// the backend, lld and thinfarm-ld itself.
std::string memoToolchain(const std::string &lld);

// The link's memo key, or nullopt when the key cannot cover what the link
// reads or does (a linker script that pulls in others, an input that cannot
// be stat'ed, an option that prints to standard output).
Result<std::optional<MemoKey>> memoKey(const MemoIdentity &id, const LinkCommand &cmd,
                                       const Inputs &inputs, unsigned threads);

// A memo hit: the output written into place and what the link printed then.
// nullopt: no entry, or one whose .incbin files have changed since. An error:
// the farm did not answer the lookup.
Result<std::optional<std::string>> replayMemo(FarmClient &farm, const MemoKey &key,
                                              const std::string &output);

// Records a finished link, unless a file it read changed while it ran.
// Failing to record costs a later hit only: it is reported, never fatal.
void recordMemo(FarmClient &farm, const MemoKey &key, const std::string &output,
                const std::vector<std::string> &incbins, const std::string &transcript);

} // namespace thinfarm
