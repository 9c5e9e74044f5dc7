// Fuzzes the wire's message codec (wire/codec.cpp): every frame a peer sends
// a daemon goes through decode() first. A frame must decode to a message or
// to a "malformed message" error, never crash, leak or hang; and what decodes
// must survive the trip back: encode(decode(x)) decodes to a message that
// encodes to the same bytes (a message the codec accepts but cannot carry
// would be a silently different message on the other side).
#include "tests/fuzz/fuzz.h"
#include "wire/messages.h"

#include <cstring>
#include <memory>

using namespace thinfarm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view frame = fuzz::asText(data, size);
  auto m = wire::decode(frame);
  // The same bytes at an odd address: decode's copying path (a ZeroMQ buffer
  // is not always word-aligned).
  auto buf = std::make_unique<char[]>(size + 1);
  std::memcpy(buf.get() + 1, data, size);
  auto unaligned = wire::decode(std::string_view(buf.get() + 1, size));
  if (m.ok() != unaligned.ok())
    fuzz::fail("decode depends on the frame's alignment");
  if (!m.ok()) {
    if (m.error().message.rfind("malformed message: ", 0) != 0)
      fuzz::fail("decode error without its prefix: " + m.error().message);
    return 0;
  }
  (void)wire::kindName(m->body);
  std::string again = wire::encode(*m);
  if (wire::encode(*unaligned) != again)
    fuzz::fail("an aligned and an unaligned frame decode differently");
  auto back = wire::decode(again);
  if (!back.ok())
    fuzz::fail(std::string("a decoded ") + wire::kindName(m->body) +
               " does not decode once encoded again: " + back.error().message);
  if (wire::encode(*back) != again)
    fuzz::fail(std::string("a decoded ") + wire::kindName(m->body) + " changes on a round trip");
  return 0;
}
