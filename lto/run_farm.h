#pragma once

#include "client/client.h"
#include "lto/driver.h"
#include "lto/expand.h"
#include "lto/run.h"

#include <map>
#include <memory>

namespace thinfarm {

struct RunResult {
  std::vector<NativeObject> natives; // one per job, in job order
  size_t local = 0, remote = 0, merged = 0;
  size_t cacheHits = 0;         // answered by the action cache
  std::vector<std::string> ran; // modules whose backend ran (not cached), in completion order
  std::map<std::string, size_t> workers; // who ran how many jobs ("local": this process)
};

// The farm a link uses, as the context says: a configured coordinator, the
// embedded local one (started on demand), or none ("off", or unreachable:
// a one-line notice, and the backends run in this process).
class FarmConnection {
public:
  static FarmConnection open(const DriverContext &ctx);
  FarmClient *client() { return client_.get(); }
  // The farm did not answer (the link memo's lookup): the rest of the link
  // does without it rather than wait for it again.
  void lost(std::string why);
  const std::string &endpoint() const { return endpoint_; }
  const std::string &lostReason() const { return lost_; }

private:
  std::string endpoint_, lost_;
  std::unique_ptr<wire::Context> wire_;
  std::unique_ptr<FarmClient> client_; // destroyed before the context
};

// The action-cache key of one farm job: what backendKey hashes, read from the
// submission and the job's spec (the shard's bytes are not in the spec).
Result<Digest> jobKey(const FarmSubmission &sub, const wire::JobSpec &spec,
                      std::string_view shard);

// Before the thin link: the bitcode every job will name (each module the
// link surely loads: object files and --whole-archive members) starts on
// its way to the farm, so the upload overlaps the thin link instead of
// delaying the first job. Nothing when the backends will run here.
void sendInputsAhead(FarmConnection &farm, const LinkCommand &cmd, const Inputs &inputs);

// Stage 6: runs the jobs on the farm, if there is one, else in this process,
// and keeps each output as it arrives.
Result<RunResult> runBackends(FarmConnection &farm, const DriverContext &ctx,
                              const LinkCommand &cmd, const std::vector<BackendJob> &jobs,
                              unsigned threads, const KeepOutput &keep);

} // namespace thinfarm
