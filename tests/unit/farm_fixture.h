// Test fixtures for the farm's parts, all real: a Coordinator on its own
// thread (ZeroMQ over ipc in a scratch directory, RocksDB beside it), and the
// FarmClient that thinfarm-ld uses, run to the end with its results collected.
#pragma once

#include "client/client.h"
#include "coordinator/coordinator.h"
#include "scratch_dir.h"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <thread>

namespace thinfarm::test {

class InProcessCoordinator {
public:
  // Listens on ipc://DIR/NAME.sock with its store in DIR/NAME-store; configure
  // may change the options first.
  InProcessCoordinator(wire::Context &ctx, const ScratchDir &dir, const std::string &name,
                       const std::function<void(CoordinatorOptions &)> &configure = {})
      : endpoint_("ipc://" + dir.file(name + ".sock")) {
    CoordinatorOptions o;
    o.listen = {endpoint_};
    o.storeDir = dir.file(name + "-store");
    if (configure)
      configure(o);
    auto c = Coordinator::create(ctx, o);
    EXPECT_TRUE(c.ok()) << c.error().message;
    if (!c.ok())
      return;
    coordinator_ = std::move(*c);
    thread_ = std::thread([this] { (void)coordinator_->run(stop_); });
  }
  ~InProcessCoordinator() {
    stop_ = true;
    if (thread_.joinable())
      thread_.join();
  }
  InProcessCoordinator(const InProcessCoordinator &) = delete;
  InProcessCoordinator &operator=(const InProcessCoordinator &) = delete;

  bool running() const { return coordinator_ != nullptr; }
  Coordinator &get() { return *coordinator_; }
  const std::string &endpoint() const { return endpoint_; }

private:
  std::string endpoint_;
  std::unique_ptr<Coordinator> coordinator_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// One FarmClient session to the end; every result it hands over goes to results.
inline Result<FarmOutcome> runFarmClient(wire::Context &ctx, const std::string &endpoint,
                                         const FarmSubmission &sub,
                                         std::vector<FarmResult> &results) {
  FarmClient client(ctx, endpoint);
  return client.run(
      sub,
      [&](FarmResult &&r) {
        results.push_back(std::move(r));
        return ok();
      },
      {});
}

} // namespace thinfarm::test
