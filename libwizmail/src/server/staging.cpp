#include "server/staging.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "server/server_impl.hpp"
#include "util/fs.hpp"

namespace wizmail::server {

Status MessageStaging::begin(const Runtime& rt, CommitPipeline& pipeline, const smtp::Transaction& txn, bool plain_ok) {
  staged_.reset();
  filter_ = ReturnPathFilter{};
  final_len_ = 0;
  const smtp::Recipient* first = nullptr;
  bool one_account = true;
  for (const auto& r : txn.recipients) {
    if (!r.local()) continue;
    if (!first) first = &r;
    else if (r.account != first->account) one_account = false;
  }
  const auto tmp = first ? rt.mailbox_dir / first->account / "tmp" : rt.config->queue_dir() / "tmp";
  auto m = StagedMessage::create(tmp);
  if (!m) return unexpected(m.error());
  staged_.emplace(std::move(*m));
  if (plain_ok && first && one_account && !txn.has_remote() && pipeline.plain_delivery(rt.mailbox_dir / first->account)) {
    const std::string h = final_headers(txn.reverse_path, first->delivered_to());
    if (auto st = staged_->write(h); !st) {
      staged_.reset();
      return st;
    }
    final_len_ = h.size();
  }
  return {};
}

Status MessageStaging::write(std::string_view bytes) {
  if (!staged_) return fail(Errc::internal, "no message open");
  return filter_.feed(bytes, [this](std::string_view s) { return staged_->write(s); });
}

void MessageStaging::abort() noexcept { staged_.reset(); }

Result<std::string> MessageStaging::contents() const {
  if (!staged_ || !staged_->finished()) return fail(Errc::internal, "no finished message");
  return util::read_file(staged_->tmp_path());
}

Status MessageStaging::replace(std::string_view text) {
  if (!staged_ || final_len_ != 0) return fail(Errc::internal, "no message to replace");
  auto m = StagedMessage::create(staged_->tmp_path().parent_path());
  if (!m) return unexpected(m.error());
  if (auto st = m->write(text); !st) return st;
  if (auto st = m->finish(); !st) return st;
  staged_->discard();
  staged_.emplace(std::move(*m));
  return {};
}

Status MessageStaging::finish() {
  if (!staged_) return fail(Errc::internal, "commit without a message");
  Status st = filter_.finish([this](std::string_view s) { return staged_->write(s); });
  if (st) st = staged_->finish();
  if (!st) staged_.reset();
  return st;
}

Result<std::string> MessageStaging::read_message() const {
  if (!staged_ || !staged_->finished()) return fail(Errc::internal, "no finished message");
  const std::uint64_t size = staged_->size();
  std::string all(static_cast<std::size_t>(size), '\0');
  std::uint64_t got = 0;
  while (got < size) {
    ssize_t n = ::pread(staged_->fd(), all.data() + got, static_cast<std::size_t>(size - got),
                        static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(Errc::io, "reading the staged message: " + std::string(n < 0 ? std::strerror(errno) : "short file"));
    got += static_cast<std::uint64_t>(n);
  }
  prefix_ = all.substr(0, static_cast<std::size_t>(final_len_));
  return all.substr(static_cast<std::size_t>(final_len_));
}

Status MessageStaging::replace_header_section(const std::string& message, std::size_t header_len,
                                              std::string_view headers) {
  if (!staged_ || header_len > message.size()) return fail(Errc::internal, "no finished message");
  auto m = StagedMessage::create(staged_->tmp_path().parent_path());
  if (!m) return unexpected(m.error());
  Status st = m->write(prefix_);
  if (st) st = m->write(headers);
  if (st) st = m->write(std::string_view(message).substr(header_len));
  if (st) st = m->finish();
  if (!st) return st;  // the new file is deleted, the old one stays
  staged_.emplace(std::move(*m));
  final_len_ = prefix_.size();
  return {};
}

CommitJob MessageStaging::take(const Runtime& rt, const smtp::Transaction& txn, std::string client_ip,
                               std::string auth_user, bool local_submit,
                               const std::function<void(const std::string&)>& log) {
  CommitJob job = make_commit_job(std::move(*staged_), txn, rt.mailbox_dir, std::move(client_ip), std::move(auth_user));
  if (rt.srs && !job.remote.recipients.empty()) {
    auto s = srs_forward_sender(*rt.srs, rt.srs_domain, rt.local_domains, txn, local_submit, std::time(nullptr));
    if (!s) {
      if (log) log("srs: sender <" + txn.reverse_path + "> kept: " + s.error().message);
    } else if (*s) {
      job.remote.sender = std::move(**s);
    }
  }
  staged_.reset();
  job.final_headers_len = final_len_;
  return job;
}

}  // namespace wizmail::server
