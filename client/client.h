// The client side of the coordinator: what thinfarm-ld uses to run a link's
// backend jobs on a farm.
//
// One session per link: find which blobs the coordinator's store lacks,
// upload them (most of them ahead, while the link's thin link runs:
// sendAhead), submit the jobs, then take results as they come (each native
// object inline, or downloaded when larger than a chunk), heartbeating meanwhile. A session with
// more jobs than one frame holds goes in parts. Errors follow retry.h: an
// overloaded coordinator is retried after a pause; a lost one (its connection
// closed, or 1.5 s without a word) is reconnected once and the unfinished
// jobs resubmitted; after that the jobs still unfinished come back to the
// caller to run locally, within 3 s of the loss. A job whose backend failed
// ends the session with that error.
#pragma once

#include "wire/blob_transfer.h"

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <map>
#include <optional>

namespace thinfarm {

struct FarmSubmission {
  std::string toolchain;
  std::string output;
  BackendConfig config;
  std::vector<wire::JobSpec> jobs;   // task = index into the caller's jobs
  std::vector<wire::BlobRef> blobs;  // every blob the jobs name, each once
};

struct FarmResult {
  uint32_t task = 0;
  std::string native;
  std::vector<Diagnostic> diagnostics;
  std::string worker;
  bool merged = false;
  bool cached = false; // from the action cache
};

struct FarmOutcome {
  std::vector<uint32_t> unfinished; // tasks to run locally
  std::string why;                  // why they were not finished on the farm
  bool farmLost = false;            // the coordinator was lost (or never reached)
  size_t merged = 0;
  std::string backendFailure; // set when a job's backend failed
};

// Called with each result as it arrives; an error ends the session.
using TakeResult = std::function<Status(FarmResult &&)>;
using ShowProgress = std::function<void(const wire::Progress &)>;

class FarmClient {
public:
  // curve: the keys to reach a coordinator that runs with them (wire/keys.h).
  FarmClient(wire::Context &ctx, std::string endpoint,
             std::optional<wire::ClientCurve> curve = std::nullopt);
  ~FarmClient(); // stops what is sent ahead (after the blob under way)
  FarmClient(const FarmClient &) = delete;
  FarmClient &operator=(const FarmClient &) = delete;
  const std::string &endpoint() const { return endpoint_; }

  // Starts sending blobs a coming run() will name (a link's bitcode, known
  // before its thin link) on a thread of its own, over the connection the
  // memo calls use, while the caller goes on; every other call waits for it
  // first, so nothing is sent twice. Best effort: what it could not send,
  // run() sends. The bytes must stay valid until the next call or the
  // client's end.
  void sendAhead(std::vector<std::string_view> blobs);

  // Runs the submission. Failed: a backend failed (the message names the
  // module); every other way the farm can let the link down ends in an
  // outcome listing the unfinished tasks.
  Result<FarmOutcome> run(const FarmSubmission &sub, const TakeResult &take,
                          const ShowProgress &progress);

  // The link memo (lto/memo.cpp): the entry under key, if the coordinator has one.
  Result<std::optional<wire::LinkMemo>> lookupLink(const Digest &key);
  // Records a memo entry, uploading the output first unless the store has it.
  Status recordLink(const wire::RecordLink &memo, std::string_view output);
  // One blob from the coordinator's store, checked against its digest.
  Result<std::string> fetch(const Digest &digest);
  Result<wire::StoreStats> stats();
  // An admin's drain of a worker (or its end); the statistics after it.
  Result<wire::StoreStats> drain(const std::string &worker, bool drain);

private:
  struct Ahead;
  std::optional<Error> finishAhead(); // the loss that ended it early, if any
  Result<wire::Socket *> socket();
  Result<wire::StoreStats> askStats(wire::Body &&request);
  Status submit(wire::Socket &sock, wire::Session &session, const std::vector<wire::JobSpec> &jobs,
                const std::vector<bool> &done);
  Status attempt(wire::Socket &sock, const FarmSubmission &sub, std::vector<bool> &done,
                 const TakeResult &take, const ShowProgress &progress, FarmOutcome &outcome);
  wire::Context &ctx_;
  std::string endpoint_;
  std::optional<wire::ClientCurve> curve_;
  std::optional<wire::Socket> sock_; // for the calls above
  std::unique_ptr<Ahead> ahead_;     // while sendAhead's thread owns sock_
  std::chrono::steady_clock::time_point lastHeard_; // the coordinator's last word in a session
};

} // namespace thinfarm
