// Fuzzes pipe framing (wire/frame.cpp): what a worker slot reads from its
// thinfarm-backend child and the child from the slot, as a stream of
// length-prefixed frames. The input is the stream's bytes, in a memfd read
// with readFrame until it stops: every frame is a message or an error, the
// stream ends with Disconnected only at a frame boundary, and nothing is
// allocated for a declared length above kMaxFrame. A message read is written
// back with writeFrame and must read back the same.
#include "tests/fuzz/fuzz.h"
#include "wire/frame.h"

#include <sys/mman.h>
#include <unistd.h>

using namespace thinfarm;

namespace {

struct Fd {
  int fd;
  explicit Fd(const char *name) : fd(memfd_create(name, MFD_CLOEXEC)) {
    if (fd < 0)
      fuzz::fail("memfd_create failed");
  }
  ~Fd() { ::close(fd); }
  Fd(const Fd &) = delete;
  Fd &operator=(const Fd &) = delete;
  void rewind() const { (void)::lseek(fd, 0, SEEK_SET); }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Fd in("frames");
  if (size && ::write(in.fd, data, size) != static_cast<ssize_t>(size))
    fuzz::fail("cannot fill the memfd");
  in.rewind();
  for (size_t frames = 0;; ++frames) {
    off_t before = ::lseek(in.fd, 0, SEEK_CUR);
    auto m = wire::readFrame(in.fd);
    if (!m.ok()) {
      if (m.error().kind == ErrorKind::Disconnected && static_cast<size_t>(before) != size)
        fuzz::fail("end of stream reported in the middle of it");
      break;
    }
    Fd out("echo");
    if (!wire::writeFrame(out.fd, *m).ok())
      fuzz::fail("writeFrame to a memfd failed");
    out.rewind();
    auto back = wire::readFrame(out.fd);
    if (!back.ok())
      fuzz::fail("a frame writeFrame wrote does not read back: " + back.error().message);
    if (wire::encode(*back) != wire::encode(*m))
      fuzz::fail("a frame changes through writeFrame and readFrame");
    if (frames > size)
      fuzz::fail("more frames than bytes");
  }
  return 0;
}
