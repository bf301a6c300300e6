// util::Prefetch: worked out once, by the task or the first reader; a
// reader waits only for work under way, never for work not yet started.
#include "util/prefetch.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

using namespace wizmail;
using namespace std::chrono_literals;

TEST_CASE("prefetch: the task's value is what the reader gets, worked out once") {
  util::Prefetch<int> p;
  int calls = 0;
  p.run([&] { return ++calls, 7; });
  CHECK(p.ready());
  CHECK(p.get([&] { return ++calls, 9; }) == 7);
  p.run([&] { return ++calls, 11; });  // too late: nothing happens
  CHECK(p.get([&] { return ++calls, 13; }) == 7);
  CHECK(calls == 1);
}

TEST_CASE("prefetch: a reader that comes first works it out, and the task then does nothing") {
  util::Prefetch<int> p;
  CHECK_FALSE(p.ready());
  CHECK(p.get([] { return 3; }) == 3);
  bool task_ran = false;
  p.run([&] { return task_ran = true, 4; });
  CHECK_FALSE(task_ran);
  CHECK(p.get([] { return 5; }) == 3);
}

TEST_CASE("prefetch: a reader waits for the work under way, and does not do it again") {
  util::Prefetch<int> p;
  std::atomic<bool> started{false}, release{false};
  std::thread task([&] {
    p.run([&] {
      started = true;
      while (!release) std::this_thread::sleep_for(1ms);
      return 42;
    });
  });
  while (!started) std::this_thread::sleep_for(1ms);
  std::atomic<bool> got{false};
  int value = 0;
  bool reader_worked = false;
  std::thread reader([&] {
    value = p.get([&] { return reader_worked = true, -1; });
    got = true;
  });
  std::this_thread::sleep_for(20ms);
  CHECK_FALSE(got.load());  // still waiting for the task
  release = true;
  task.join();
  reader.join();
  CHECK(value == 42);
  CHECK_FALSE(reader_worked);
}

TEST_CASE("prefetch: work that throws leaves T{} for the readers; the reader that threw sees it") {
  util::Prefetch<int> a;
  a.run([]() -> int { throw std::runtime_error("dns"); });
  CHECK(a.ready());
  CHECK(a.get([] { return 5; }) == 0);

  util::Prefetch<int> b;
  CHECK_THROWS_AS(b.get([]() -> int { throw std::runtime_error("dns"); }), std::runtime_error);
  CHECK(b.get([] { return 5; }) == 0);
}
