// Messages over a pipe (a worker slot and its thinfarm-backend child): each
// frame is its length (4 bytes, little-endian) and the encoded Message. A
// length above kMaxFrame is refused before anything is allocated for it.
#pragma once

#include "wire/messages.h"

namespace thinfarm::wire {

Status writeFrame(int fd, const Message &m);
// Reads one frame; a clean end of file before the first byte is Disconnected
// (the other end closed the pipe), a truncated or oversized frame Failed.
Result<Message> readFrame(int fd);

} // namespace thinfarm::wire
