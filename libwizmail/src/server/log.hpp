// The server's logs (SPEC §10): var/log/{smtp,pop,error,server}.log.
//
// One line per event: "<UTC time> <session> <peer> <account> <text>".
// I/O threads only format a line and append it to an in-memory buffer under a
// mutex (no system call, no wake-up); a writer thread wakes every 20 ms (or
// early when 64 KiB are pending), swaps the buffers out and writes each file
// with one write(). A file over log_size_max is renamed to ".1"
// (replacing the previous ".1") and reopened. When the pending buffers exceed
// a bound (the disk cannot keep up), lines are dropped and the count of
// dropped lines is logged to server.log, so logging never blocks I/O.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include <vector>

#include "wizmail/error.hpp"
#include "wizmail/server.hpp"

namespace wizmail::server {

enum class LogFile { smtp = 0, pop = 1, error = 2, server = 3 };

class Logger {
 public:
  // Opens nothing yet: start() creates the folder and the writer thread.
  // `files` false: no folder and no files, only stderr and the sink.
  // `sink` (ServerOptions::log_sink) gets every line as a record, on the
  // writer thread (or, while it does not run, on the caller's), one at a time.
  Logger(std::filesystem::path dir, std::int64_t size_max, bool to_stderr, bool files = true,
         LogSink sink = {});
  ~Logger();
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  Status start();
  // Write what is pending and stop the writer thread.
  void stop();

  void set_size_max(std::int64_t bytes) noexcept { size_max_.store(bytes); }

  // One event. Empty fields are written as "-". `text` is sanitised (control
  // characters and bytes ≥ 0x7F shown as \xHH) so a client cannot forge lines.
  void log(LogFile file, std::string_view session, std::string_view peer,
           std::string_view account, std::string_view text);
  // server.log (and stderr in the foreground).
  void server(std::string_view text) { log(LogFile::server, {}, {}, {}, text); }

  // Block until everything logged so far is written (tests, shutdown).
  void flush();

  const std::filesystem::path& dir() const noexcept { return dir_; }
  static std::string_view file_name(LogFile f) noexcept;

 private:
  void run();
  void write_out(std::array<std::string, 4>& batch);
  void deliver(std::vector<LogRecord>& records);

  std::filesystem::path dir_;
  std::atomic<std::int64_t> size_max_;
  bool to_stderr_;
  bool files_;
  LogSink sink_;
  std::mutex sink_mu_;  // one sink call at a time, whichever thread makes it
  std::vector<LogRecord> pending_records_;  // for the sink (under mu_)

  std::mutex mu_;
  std::condition_variable cv_, flushed_;
  std::array<std::string, 4> pending_;
  std::size_t pending_bytes_ = 0;
  std::uint64_t dropped_ = 0;
  std::uint64_t seq_queued_ = 0, seq_written_ = 0;
  bool stop_ = false;
  bool flush_wanted_ = false;
  bool started_ = false;

  std::array<int, 4> fds_{-1, -1, -1, -1};
  std::array<std::int64_t, 4> sizes_{};
  std::thread thread_;
};

}  // namespace wizmail::server
