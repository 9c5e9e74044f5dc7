// The coordinator's retry policy for one job: what follows a run that did not
// give a result, decided by how it went wrong and by the job's history. The
// scheduler asks here and nowhere else (the client's own policy, on what the
// coordinator answers, is client/retry.h).
//
//  * Backend failure (ErrorKind::Failed from the worker: the backend's own
//    error, or a crash its child caught and named): believed only when a
//    second worker of another name fails it too. The first runs it again on
//    another worker; a failure on two workers fails the link with the
//    backend's message. With no other worker able to run it, the one
//    worker's word stands (as its results do, verification.h).
//  * Lost (ErrorKind::Disconnected from the worker: the backend child killed
//    by a signal, SIGKILL from the OOM killer or a memory limit, or the
//    worker's own trouble; the worker gone; its registration redone): the job
//    is not at fault. It runs again, on another worker when there is one,
//    up to kAttempts runs; then the client runs it.
//  * Overran its deadline: once on another worker, then on the client.
//  * Wrong key (a result for another job): on another worker, as lost.
//  * Too large (ErrorKind::Exceeded from the worker: a result that cannot fit
//    a message, its diagnostics alone over the limit): every worker would
//    say the same, so the client runs it.
#pragma once

namespace thinfarm {

enum class RunEnd { BackendFailed, Lost, Overran, WrongKey, TooLarge };

enum class JobNext {
  RunElsewhere, // queue it again (the workers that failed or lost it excluded if others can)
  Fail,         // answer the sessions with the backend's failure
  RunOnClient,  // answer with disconnected: the client runs it locally
};

struct JobHistory {
  int attempts = 0;      // runs that ended lost or under a wrong key, this one included
  int overran = 0;       // deadlines passed, this one included
  int failedWorkers = 0; // distinct workers whose backend failed it, this one included
  bool otherWorker = false; // a worker that has not run it could run it
};

constexpr int kJobAttempts = 3;

inline JobNext nextRun(RunEnd end, const JobHistory &h) {
  switch (end) {
  case RunEnd::BackendFailed:
    return h.failedWorkers < 2 && h.otherWorker ? JobNext::RunElsewhere : JobNext::Fail;
  case RunEnd::Lost:
  case RunEnd::WrongKey:
    return h.attempts < kJobAttempts ? JobNext::RunElsewhere : JobNext::RunOnClient;
  case RunEnd::Overran:
    return h.overran < 2 ? JobNext::RunElsewhere : JobNext::RunOnClient;
  case RunEnd::TooLarge: return JobNext::RunOnClient;
  }
  return JobNext::RunOnClient;
}

} // namespace thinfarm
