// Figures, not checks: skipped by default. Run with
//   build/tests/store/test_store --no-skip --test-case='bench*'
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "temp_dir.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/mailbox.hpp"
#include "store/maildir_delivery.hpp"

using namespace wizmail;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Process CPU time (user + system), steadier than wall time on a busy machine.
double cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
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
                                     << std::string(mode == SyncMode::syncfs ? "syncfs" : "fsync_each")
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
  double c0 = cpu_seconds();
  auto l = box.list();
  REQUIRE(l);
  REQUIRE(l->size() == 100000);
  MESSAGE("list() of 100,000: " << seconds_since(t0) * 1000 << " ms wall, "
                                << (cpu_seconds() - c0) * 1000 << " ms CPU");
  // What list() no longer does for names with ",S=": one fstatat per file.
  {
    int dfd = ::open(nd.c_str(), O_RDONLY | O_DIRECTORY);
    REQUIRE(dfd >= 0);
    t0 = Clock::now();
    c0 = cpu_seconds();
    for (const auto& m : *l) {
      struct stat st {};
      REQUIRE(::fstatat(dfd, m.path.filename().c_str(), &st, 0) == 0);
    }
    MESSAGE("for comparison, 100,000 fstatat: " << seconds_since(t0) * 1000 << " ms wall, "
                                                << (cpu_seconds() - c0) * 1000 << " ms CPU");
    ::close(dfd);
  }
  t0 = Clock::now();
  auto t = box.totals();
  REQUIRE(t);
  REQUIRE(t->bytes == 123400000);
  MESSAGE("totals()/check_quota of 100,000: " << seconds_since(t0) * 1000 << " ms");
  t0 = Clock::now();
  REQUIRE(box.move_all_to_cur().value() == 100000);
  MESSAGE("move_all_to_cur() of 100,000: " << seconds_since(t0) * 1000 << " ms");
}
