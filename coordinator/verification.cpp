#include "coordinator/verification.h"

#include <algorithm>

namespace thinfarm {

Verifier::Verifier(VerifyOptions o)
    : options_(o), rng_(o.seed ? o.seed : std::random_device{}()) {}

void Verifier::met(const std::string &worker, bool trusted) {
  Record &r = workers_[worker];
  r.trusted = r.trusted || trusted;
}

uint32_t Verifier::probationLeft(const std::string &worker) const {
  auto it = workers_.find(worker);
  if (it == workers_.end())
    return options_.probation;
  if (it->second.trusted)
    return 0;
  return options_.probation - std::min(options_.probation, it->second.agreed);
}

bool Verifier::quarantined(const std::string &worker) const {
  auto it = workers_.find(worker);
  return it != workers_.end() && it->second.quarantined;
}

bool Verifier::sample() {
  if (options_.fraction <= 0)
    return false;
  return std::uniform_real_distribution<double>(0, 1)(rng_) < options_.fraction;
}

Verifier::Verdict Verifier::judge(const std::vector<Answer> &answers, bool thirdAvailable) const {
  Verdict v;
  // A value that at least two workers gave wins; the rest lose.
  for (const Answer &a : answers) {
    if (std::count(answers.begin(), answers.end(), a) >= 2) {
      v.winner = a;
      for (const Answer &b : answers)
        if (!(b == a))
          v.losers.push_back(b.worker);
      return v;
    }
  }
  if (answers.size() != 2)
    return v; // three answers, no two alike: nobody can be believed
  if (thirdAvailable) {
    v.needThird = true;
    return v;
  }
  // No third worker: an established worker's word against one on probation.
  const Answer &a = answers[0], &b = answers[1];
  bool aFirm = probationLeft(a.worker) == 0, bFirm = probationLeft(b.worker) == 0;
  if (aFirm != bFirm) {
    v.winner = aFirm ? a : b;
    v.losers.push_back(aFirm ? b.worker : a.worker);
  }
  return v;
}

void Verifier::credit(const std::vector<Answer> &answers, const Verdict &v) {
  if (v.winner && std::count(answers.begin(), answers.end(), *v.winner) >= 2)
    for (const Answer &a : answers)
      if (a == *v.winner)
        workers_[a.worker].agreed++;
}

void Verifier::quarantine(const std::string &worker) {
  workers_[worker].quarantined = true;
}

std::map<std::string, std::pair<uint32_t, bool>> Verifier::standing() const {
  std::map<std::string, std::pair<uint32_t, bool>> all;
  for (const auto &[name, r] : workers_)
    all[name] = {probationLeft(name), r.quarantined};
  return all;
}

} // namespace thinfarm
