// Results nobody can forge: which worker results are checked against a
// second worker's, and what a disagreement means.
//
// Every backend is deterministic: the same job gives the same object on any
// honest worker. So the coordinator can check a worker by running the job
// again elsewhere and comparing the objects (their digests: the coordinator
// hashed what it received), byte for byte, with no trust in either.
//
//  * Probation. A worker (by its allow-list name) starts on probation: each
//    of its first kProbation results is held, run again on a worker of
//    another name, and delivered (and cached) only when the two agree. Each
//    agreement counts once for each of the two.
//  * Sampling. After probation, a fraction of results (--verify-fraction,
//    default 2%) is delivered at once and checked afterwards.
//  * Disagreement. A third worker runs the job and the majority decides; the
//    worker that disagreed is quarantined: it gets no more jobs, is named in
//    the log and the statistics, and every action-cache record it wrote is
//    dropped. Without a third worker, an established worker's word stands
//    against one on probation; two on probation decide nothing, and the
//    client runs the job itself. No majority at all (three answers): the
//    client runs it itself, nobody is quarantined.
//  * One worker. With nobody to compare against, its results are delivered
//    unchecked; the log says so once.
//  * Trusted. The coordinator's own worker pool (same process) is never on
//    probation.
//
// Quarantine lasts while the coordinator runs; the allow-list is the lasting
// remedy (remove the key, SIGHUP).
#pragma once

#include "base/digest.h"

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace thinfarm {

struct VerifyOptions {
  uint32_t probation = 50; // results each new worker has checked before delivery
  double fraction = 0.02;  // of the results after probation, checked after delivery
  uint64_t seed = 0;       // sampling; 0: from std::random_device
};

// What one worker answered for a job: an object, or a failure.
struct Answer {
  std::string worker;
  bool failed = false;
  Digest native; // when !failed
  bool operator==(const Answer &o) const {
    return failed == o.failed && (failed || native == o.native);
  }
};

class Verifier {
public:
  explicit Verifier(VerifyOptions o = {});

  // A worker registered; trusted ones start past probation.
  void met(const std::string &worker, bool trusted);
  // Results of this worker left to check before delivery (0: past probation).
  uint32_t probationLeft(const std::string &worker) const;
  bool quarantined(const std::string &worker) const;
  // Whether a result delivered from an established worker is checked after.
  bool sample();

  // The verdict on a job's answers (two or three, from distinct workers).
  struct Verdict {
    std::optional<Answer> winner;       // none: undecided
    std::vector<std::string> losers;    // to quarantine
    bool needThird = false;             // two disagree: ask a third worker
  };
  // `thirdAvailable`: a worker of a third name could run the job.
  Verdict judge(const std::vector<Answer> &answers, bool thirdAvailable) const;
  // The agreement of the workers that gave the winning answer counts toward
  // their probation (the caller quarantines the losers).
  void credit(const std::vector<Answer> &answers, const Verdict &v);
  void quarantine(const std::string &worker);

  // Every worker it has met, by name: {probation left, quarantined}.
  std::map<std::string, std::pair<uint32_t, bool>> standing() const;

private:
  struct Record {
    uint32_t agreed = 0;
    bool trusted = false, quarantined = false;
  };
  VerifyOptions options_;
  std::map<std::string, Record> workers_;
  std::mt19937_64 rng_;
};

} // namespace thinfarm
