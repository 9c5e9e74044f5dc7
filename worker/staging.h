// Blob files for backend children, on the worker's scratch disk (tmpfs).
//
// A child reads its inputs from files, so the worker writes each blob it needs
// from its store to staging/<digest> once and reuses it for every later job
// (a module is imported by many). Exactly one slot writes a file; a slot that
// needs it meanwhile waits until it is complete, so no backend ever maps a
// file that is still being written. A file is never rewritten once complete.
// Files in use by a running job are pinned; past the byte budget, the least
// recently used unpinned files go. Each file is created O_EXCL|O_NOFOLLOW
// under a temporary name and made read-only (0444) before it is renamed into
// place; backends see it through hard links in their slot's input directory.
#pragma once

#include "storage/store.h"

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace thinfarm {

// A new directory PREFIXxxxxxx of mode 0700 (mkdtemp), for a daemon's staging files.
Result<std::string> makeScratchDir(const std::string &prefix);

class Staging {
public:
  Staging(std::string dir, uint64_t budget) : dir_(std::move(dir)), budget_(budget) {}

  // The paths of the blobs' files, written from the store where missing;
  // pinned until release(digests).
  Result<std::vector<std::string>> acquire(Store &store, const std::vector<Digest> &digests);
  void release(const std::vector<Digest> &digests);

private:
  struct Entry {
    std::string path;
    uint64_t size = 0;
    uint64_t lastUse = 0;
    unsigned pins = 0;
    bool ready = false;   // complete on disk
    bool writing = false; // a slot is writing it
  };
  void evictLocked();
  std::string dir_;
  uint64_t budget_;
  std::mutex mu_;
  std::condition_variable written_;
  std::map<Digest, Entry> files_;
  uint64_t bytes_ = 0;
  uint64_t clock_ = 0;
};

} // namespace thinfarm
