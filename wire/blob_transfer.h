// Moving blobs over a DEALER socket, chunk by chunk, with flow control.
//
// Upload: every blob is cut into chunks of kChunk bytes; at most kWindow
// chunks (of any blobs) are unacknowledged at a time, and the receiver acks
// each one once it is stored. Download: the same window of outstanding
// getChunk requests; a blob is handed over only after its digest checked.
// Both run on the calling thread; other traffic on the socket goes to the
// caller's `other` handler.
#pragma once

#include "wire/transport.h"

#include <functional>
#include <span>
#include <string_view>

namespace thinfarm::wire {

struct BlobRef {
  Digest digest;
  std::string_view bytes;
};

// How long to wait for any answer before calling the peer gone.
constexpr std::chrono::milliseconds kAnswerTimeout{10000};
// A request on a socket without a connection (never made, or lost and not
// yet made again) first waits this long for one; then the peer is gone. A
// loss while a request waits ends the wait at once (Socket::disconnects()).
constexpr std::chrono::milliseconds kConnectTimeout{3000};

// Waits up to `within` for the socket's connection (at once when it is up):
// a refused handshake is its error (Denied, Overloaded), silence Disconnected.
Status awaitConnection(Socket &s, std::chrono::milliseconds within);

// Called with any message that is not an answer to the call in progress
// (a client's job results arrive while it downloads); may be empty.
using OtherMessage = std::function<void(Message &&)>;

// Sends one request (under a fresh request id) and returns its answer; an
// error answer comes back as that Error.
Result<Message> call(Socket &s, Body request, const OtherMessage &other = {});

// Asks the peer which of `digests` its store lacks. `silence`: how long
// without an answer calls the peer gone (both here and in upload).
Result<std::vector<Digest>> findMissing(Socket &s, std::span<const Digest> digests,
                                        const OtherMessage &other = {},
                                        std::chrono::milliseconds silence = kAnswerTimeout);

// Uploads every blob; returns once all are acknowledged.
Status upload(Socket &s, std::span<const BlobRef> blobs, const OtherMessage &other = {},
              std::chrono::milliseconds silence = kAnswerTimeout);

// Downloads every digest; calls `take` with each blob (digest checked) as it
// completes.
Status download(Socket &s, std::span<const Digest> digests,
                const std::function<Status(const Digest &, std::string &&)> &take,
                const OtherMessage &other = {});

} // namespace thinfarm::wire
