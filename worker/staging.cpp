#include "worker/staging.h"

#include "base/file.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace thinfarm {

Result<std::string> makeScratchDir(const std::string &prefix) {
  std::string templ = prefix + "XXXXXX";
  if (!::mkdtemp(templ.data()))
    return failed("cannot create a directory " + templ + ": " + std::strerror(errno));
  return templ;
}

namespace {

// A new file, never an existing one or a link planted in its place: written
// under a temporary name created O_EXCL|O_NOFOLLOW, made read-only, renamed
// into place (rename replaces a name, it follows nothing).
Status writeStaged(const std::string &path, std::string_view bytes) {
  std::string tmp = path + ".part";
  ::unlink(tmp.c_str()); // a leftover of a worker that died
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
  if (fd < 0)
    return failed("cannot create " + tmp + ": " + std::strerror(errno));
  Status st = writeAll(fd, bytes, tmp);
  if (st.ok() && ::fchmod(fd, 0444) != 0)
    st = failed("cannot make " + tmp + " read-only: " + std::strerror(errno));
  ::close(fd);
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0)
    st = failed("cannot rename " + tmp + ": " + std::strerror(errno));
  if (!st.ok())
    ::unlink(tmp.c_str());
  return st;
}

} // namespace

Result<std::vector<std::string>> Staging::acquire(Store &store, const std::vector<Digest> &digests) {
  std::vector<std::string> paths;
  std::vector<Digest> mine; // the files this call writes
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Digest &d : digests) {
      Entry &e = files_[d];
      if (e.path.empty()) {
        e.path = dir_ + "/" + d.text();
        e.size = d.size;
        bytes_ += d.size;
      }
      e.pins++;
      e.lastUse = ++clock_;
      if (!e.ready && !e.writing) {
        e.writing = true;
        mine.push_back(d);
      }
      paths.push_back(e.path);
    }
  }
  Status st = ok();
  for (const Digest &d : mine) {
    if (st.ok()) {
      auto bytes = store.get(d); // checked against the digest
      if (!bytes.ok())
        st = bytes.error();
      else if (const std::optional<std::string> &got = *bytes; !got)
        st = failed("input " + d.text() + " is not in the worker's store");
      else
        st = writeStaged(dir_ + "/" + d.text(), *got);
    }
    std::lock_guard<std::mutex> lock(mu_);
    Entry &e = files_[d];
    e.writing = false;
    e.ready = st.ok();
  }
  // Wait for the files other slots are writing.
  {
    std::unique_lock<std::mutex> lock(mu_);
    written_.notify_all();
    for (const Digest &d : digests) {
      written_.wait(lock, [&] { return !files_[d].writing; });
      if (!files_[d].ready && st.ok())
        st = failed("input " + d.text() + " could not be staged");
    }
  }
  if (!st.ok()) {
    release(digests);
    return std::move(st).error();
  }
  return paths;
}

void Staging::release(const std::vector<Digest> &digests) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const Digest &d : digests)
    if (auto it = files_.find(d); it != files_.end() && it->second.pins > 0)
      it->second.pins--;
  evictLocked();
}

void Staging::evictLocked() {
  while (bytes_ > budget_) {
    auto victim = files_.end();
    for (auto it = files_.begin(); it != files_.end(); ++it)
      if (it->second.pins == 0 && (victim == files_.end() || it->second.lastUse < victim->second.lastUse))
        victim = it;
    if (victim == files_.end())
      return;
    ::unlink(victim->second.path.c_str());
    bytes_ -= victim->second.size;
    files_.erase(victim);
  }
}

} // namespace thinfarm
