#include "wire/frame.h"

#include "base/file.h"

namespace thinfarm::wire {

Status writeFrame(int fd, const Message &m) {
  std::string frame = encode(m);
  uint32_t n = static_cast<uint32_t>(frame.size());
  const char len[4] = {static_cast<char>(n), static_cast<char>(n >> 8),
                       static_cast<char>(n >> 16), static_cast<char>(n >> 24)};
  TF_CHECK(writeAll(fd, std::string_view(len, 4), "the pipe"));
  return writeAll(fd, frame, "the pipe");
}

Result<Message> readFrame(int fd) {
  unsigned char len[4];
  TF_TRY(size_t got, readUpTo(fd, reinterpret_cast<char *>(len), 4, "the pipe"));
  if (got == 0)
    return Error{ErrorKind::Disconnected, "end of file"};
  if (got != 4)
    return failed("malformed message: a truncated frame length");
  uint32_t n = len[0] | len[1] << 8 | len[2] << 16 | static_cast<uint32_t>(len[3]) << 24;
  if (n > kMaxFrame)
    return failed("malformed message: a frame of " + std::to_string(n) + " bytes (at most " +
                  std::to_string(kMaxFrame) + ")");
  std::string frame(n, '\0');
  TF_TRY(size_t body, readUpTo(fd, frame.data(), n, "the pipe"));
  if (body != n)
    return failed("malformed message: a truncated frame (" + std::to_string(body) + " of " +
                  std::to_string(n) + " bytes)");
  return decode(frame);
}

} // namespace thinfarm::wire
