#include "server/log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <optional>

#include "util/fs.hpp"

namespace wizmail::server {

namespace {
constexpr std::size_t kMaxPending = 16u << 20;  // bytes held before dropping
constexpr std::size_t kWakeBytes = 64u << 10;    // wake the writer early past this
constexpr auto kWriterPeriod = std::chrono::milliseconds(20);

// "2026-11-27 21:13:12.123" in UTC; the seconds part is cached per thread.
void append_time(std::string& out) {
  using namespace std::chrono;
  thread_local std::int64_t cached_sec = -1;
  thread_local char cached[64];
  auto now = system_clock::now().time_since_epoch();
  auto ms = duration_cast<milliseconds>(now).count();
  std::int64_t sec = ms / 1000;
  if (sec != cached_sec) {
    std::time_t t = static_cast<std::time_t>(sec);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    std::snprintf(cached, sizeof cached, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    cached_sec = sec;
  }
  out += cached;
  char frac[8];
  std::snprintf(frac, sizeof frac, ".%03d", static_cast<int>(ms % 1000));
  out += frac;
}

void append_field(std::string& out, std::string_view f) {
  out += ' ';
  if (f.empty()) {
    out += '-';
    return;
  }
  for (char c : f) out += (c == ' ' || static_cast<unsigned char>(c) < 0x20) ? '_' : c;
}

// The text as a line shows it: trailing line ends dropped, control
// characters and bytes >= 0x7F as \xHH.
void append_clean(std::string& out, std::string_view text) {
  static const char hex[] = "0123456789ABCDEF";
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7F) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += ch;
    }
  }
}

void append_text(std::string& out, std::string_view text) {
  out += ' ';
  append_clean(out, text);
  out += '\n';
}

LogRecord make_record(LogFile file, std::string_view session, std::string_view peer,
                      std::string_view account, std::string_view text) {
  LogRecord r;
  r.time = std::chrono::system_clock::now();
  r.facility = static_cast<LogFacility>(file);
  r.session = session;
  r.peer = peer;
  r.account = account;
  append_clean(r.text, text);
  return r;
}
}  // namespace

}  // namespace wizmail::server

namespace wizmail {
std::string_view to_string(LogFacility f) noexcept {
  switch (f) {
    case LogFacility::smtp: return "smtp";
    case LogFacility::pop: return "pop";
    case LogFacility::error: return "error";
    case LogFacility::server: return "server";
  }
  return "server";
}
}  // namespace wizmail

namespace wizmail::server {

std::string_view Logger::file_name(LogFile f) noexcept {
  switch (f) {
    case LogFile::smtp: return "smtp.log";
    case LogFile::pop: return "pop.log";
    case LogFile::error: return "error.log";
    case LogFile::server: return "server.log";
  }
  return "server.log";
}

Logger::Logger(std::filesystem::path dir, std::int64_t size_max, bool to_stderr, bool files, LogSink sink)
    : dir_(std::move(dir)), size_max_(size_max), to_stderr_(to_stderr), files_(files), sink_(std::move(sink)) {}

Logger::~Logger() { stop(); }

Status Logger::start() {
  if (started_) return {};
  if (files_)
    if (auto st = util::make_dirs(dir_, 0750); !st) return st;
  for (int i = 0; i < 4 && files_; ++i) {
    auto path = dir_ / file_name(static_cast<LogFile>(i));
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
      int e = errno;
      for (int j = 0; j < i; ++j) ::close(fds_[j]);
      return fail_errno("open log " + path.string(), e);
    }
    struct stat st{};
    if (::fstat(fd, &st) == 0) sizes_[i] = st.st_size;
    fds_[i] = fd;
  }
  started_ = true;
  thread_ = std::thread([this] { run(); });
  return {};
}

void Logger::stop() {
  {
    std::lock_guard lk(mu_);
    if (!started_ || stop_) return;
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
  for (int& fd : fds_) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
}

void Logger::log(LogFile file, std::string_view session, std::string_view peer,
                 std::string_view account, std::string_view text) {
  thread_local std::string line;
  line.clear();
  append_time(line);
  if (file != LogFile::server || !session.empty() || !peer.empty()) {
    append_field(line, session);
    append_field(line, peer);
    append_field(line, account);
  }
  append_text(line, text);
  std::optional<LogRecord> rec;
  if (sink_) rec = make_record(file, session, peer, account, text);
  bool wake = false;
  {
    std::unique_lock lk(mu_);
    if (!started_) {
      lk.unlock();
      if (to_stderr_) (void)!::write(2, line.data(), line.size());
      if (rec) {
        std::vector<LogRecord> one;
        one.push_back(std::move(*rec));
        deliver(one);
      }
      return;
    }
    const std::size_t cost = line.size() + (rec ? rec->text.size() + 64 : 0);
    if (pending_bytes_ + cost > kMaxPending) {
      ++dropped_;
      return;
    }
    if (rec) pending_records_.push_back(std::move(*rec));
    auto& buf = pending_[static_cast<int>(file)];
    // The writer wakes by itself every few milliseconds; waking it for every
    // line would cost a context switch per line on the hot path.
    wake = pending_bytes_ < kWakeBytes && pending_bytes_ + cost >= kWakeBytes;
    buf += line;
    pending_bytes_ += cost;
    ++seq_queued_;
  }
  if (wake) cv_.notify_one();
}

void Logger::flush() {
  std::unique_lock lk(mu_);
  if (!started_ || stop_) return;
  auto target = seq_queued_;
  flush_wanted_ = true;
  cv_.notify_one();
  flushed_.wait(lk, [&] { return seq_written_ >= target || stop_; });
}

void Logger::deliver(std::vector<LogRecord>& records) {
  if (!sink_ || records.empty()) return;
  std::lock_guard lk(sink_mu_);
  for (const auto& r : records) {
    try {
      sink_(r);
    } catch (...) {
      // The embedder's sink must not take the log thread down.
    }
  }
  records.clear();
}

void Logger::run() {
  std::array<std::string, 4> batch;
  std::vector<LogRecord> records;
  for (;;) {
    std::uint64_t seq;
    std::uint64_t dropped;
    bool stopping;
    {
      std::unique_lock lk(mu_);
      cv_.wait_for(lk, kWriterPeriod, [&] { return flush_wanted_ || stop_ || pending_bytes_ >= kWakeBytes; });
      flush_wanted_ = false;
      if (pending_bytes_ == 0 && dropped_ == 0 && !stop_) continue;
      for (int i = 0; i < 4; ++i) {
        batch[i].swap(pending_[i]);
        pending_[i].clear();
      }
      records.swap(pending_records_);
      pending_records_.clear();
      pending_bytes_ = 0;
      seq = seq_queued_;
      dropped = dropped_;
      dropped_ = 0;
      stopping = stop_;
    }
    if (dropped > 0) {
      std::string note;
      append_time(note);
      std::string what = "logging fell behind: ";
      what.append(std::to_string(dropped)).append(" lines dropped");
      append_text(note, what);
      batch[static_cast<int>(LogFile::server)] += note;
      if (sink_) records.push_back(make_record(LogFile::server, {}, {}, {}, what));
    }
    write_out(batch);
    // After the files: a sink that throws or dawdles never costs a file line.
    deliver(records);
    {
      std::lock_guard lk(mu_);
      seq_written_ = seq;
    }
    flushed_.notify_all();
    if (stopping) {
      std::lock_guard lk(mu_);
      if (pending_bytes_ == 0) return;
    }
  }
}

void Logger::write_out(std::array<std::string, 4>& batch) {
  for (int i = 0; i < 4; ++i) {
    std::string& data = batch[i];
    if (data.empty()) continue;
    if (to_stderr_) (void)!::write(2, data.data(), data.size());
    if (!files_) {
      data.clear();
      continue;
    }
    std::string_view rest = data;
    while (!rest.empty()) {
      ssize_t n = ::write(fds_[i], rest.data(), rest.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        break;  // a full disk must not stop the server; nothing else to tell
      }
      rest.remove_prefix(static_cast<std::size_t>(n));
      sizes_[i] += n;
    }
    auto max = size_max_.load();
    if (max > 0 && sizes_[i] > max) {
      auto path = dir_ / file_name(static_cast<LogFile>(i));
      auto old = path;
      old += ".1";
      if (::rename(path.c_str(), old.c_str()) == 0) {
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd >= 0) {
          ::close(fds_[i]);
          fds_[i] = fd;
          sizes_[i] = 0;
        }
      }
    }
    // Keep the capacity small after a burst.
    if (data.capacity() > (256u << 10)) std::string().swap(data);
    else data.clear();
  }
}

}  // namespace wizmail::server
