// The embedded default: with no farm configured, thinfarm-ld uses a
// coordinator on this machine, started on demand and shared by every
// thinfarm-ld the build runs at once.
//
// It listens on ipc://CACHE/coordinator.sock, keeps its store in CACHE/store
// (RocksDB allows one writing process per database, so the store has exactly
// one owner: this daemon), runs one local backend slot per core, and exits
// after it has been idle for a while. CACHE/daemon.lock is held by the running
// daemon (it is the "is one running?" test, immune to stale socket files);
// CACHE/start.lock serializes starting one, so `make -j` starts exactly one.
// The daemon writes its pid into daemon.lock; its starter writes the backend
// identity into daemon.id. A thinfarm-ld of another build (another identity)
// stops that daemon and starts its own: links still running on the old one
// lose it and finish locally, with a notice.
#pragma once

#include "base/result.h"

#include <chrono>
#include <string>
#include <string_view>

namespace thinfarm {

struct LocalFarm {
  std::string cacheDir;        // THINFARM_CACHE_DIR, default ~/.cache/thinfarm
  std::string coordinator;     // the thinfarm-coordinator program
  std::string identity;        // the client's backend identity
  unsigned slots = 0;          // 0: one per core
  std::string maxSize = "5G";  // the store's budget: THINFARM_CACHE_SIZE
  std::chrono::seconds idleExit{300};
};

// The endpoint of the running local coordinator, started if none runs.
Result<std::string> ensureLocalCoordinator(const LocalFarm &farm);

// The endpoint of the local coordinator of cacheDir if one is running, else "".
std::string runningLocalCoordinator(const std::string &cacheDir);

// The default cache directory: $THINFARM_CACHE_DIR, else $XDG_CACHE_HOME/thinfarm,
// else ~/.cache/thinfarm.
std::string defaultCacheDir();

// A value of the config file ($XDG_CONFIG_HOME/thinfarm/config, else
// ~/.config/thinfarm/config): lines "NAME = VALUE", '#' starts a comment.
// Names: coordinator (the farm's address), key (this user's key file),
// coordinator-key (the farm's public key, or its .pub file). Empty if unset.
std::string configValue(std::string_view name);
// The same from the config file's text (what tests/fuzz/config_fuzz reads).
std::string configValueIn(std::string_view text, std::string_view name);

} // namespace thinfarm
