// Figures, not checks: skipped by default. Run with
//   build/tests/store/test_store --no-skip --test-case='bench*'
#include <fcntl.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "temp_dir.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/mailbox.hpp"
#include "wizmail/maildir_delivery.hpp"

using namespace wizmail;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Home {
  test::TempDir tmp;
  fs::path mailbox = tmp.path() / "mailbox";
  AccountStore store{mailbox};
  Home() {
    fs::create_directory(mailbox);
    for (auto n : {"a", "b", "c"}) REQUIRE(store.create(n, "pw"));
  }
};

}  // namespace

TEST_CASE("bench: delivery, one durable commit per message vs group commit" * doctest::skip()) {
  const std::string msg(4096, 'm');
  constexpr int kMessages = 2000;
  {
    Home h;
    const fs::path d[] = {h.mailbox / "a"};
    auto t0 = Clock::now();
    for (int i = 0; i < kMessages; ++i) REQUIRE(deliver(d, msg)[0]);
    MESSAGE("deliver() one at a time, 1 rcpt, 4 KiB: " << kMessages / seconds_since(t0)
                                                       << " msg/s");
  }
  for (int batch_size : {10, 100}) {
    for (SyncMode mode : {SyncMode::fsync_each, SyncMode::syncfs}) {
      Home h;
      auto t0 = Clock::now();
      for (int done = 0; done < kMessages; done += batch_size) {
        DeliveryBatch batch(mode);
        for (int i = 0; i < batch_size; ++i) {
          auto m = StagedMessage::create(h.mailbox / "a" / "tmp");
          REQUIRE(m);
          REQUIRE(m->write(msg));
          REQUIRE(m->finish());
          batch.add(std::move(*m), {h.mailbox / "a", h.mailbox / "b", h.mailbox / "c"});
        }
        REQUIRE(batch.commit());
      }
      MESSAGE("group commit, batch " << batch_size << ", 3 rcpts, 4 KiB, "
                                     << (mode == SyncMode::syncfs ? "syncfs" : "fsync_each")
                                     << ": " << kMessages / seconds_since(t0) << " msg/s");
    }
  }
}

TEST_CASE("bench: list and totals of 100,000 messages" * doctest::skip()) {
  Home h;
  const fs::path nd = h.mailbox / "a" / "new";
  for (int i = 0; i < 100000; ++i) {
    std::string name = "1700000000.M" + std::to_string(i) + "P1Q1.host,S=1234";
    int fd = ::open((nd / name).c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    REQUIRE(fd >= 0);
    ::close(fd);
  }
  Mailbox box(h.mailbox / "a");
  auto t0 = Clock::now();
  auto l = box.list();
  REQUIRE(l);
  REQUIRE(l->size() == 100000);
  MESSAGE("list() of 100,000: " << seconds_since(t0) * 1000 << " ms");
  t0 = Clock::now();
  auto t = box.totals();
  REQUIRE(t);
  REQUIRE(t->bytes == 123400000);
  MESSAGE("totals()/check_quota of 100,000: " << seconds_since(t0) * 1000 << " ms");
  t0 = Clock::now();
  REQUIRE(box.move_all_to_cur().value() == 100000);
  MESSAGE("move_all_to_cur() of 100,000: " << seconds_since(t0) * 1000 << " ms");
}
