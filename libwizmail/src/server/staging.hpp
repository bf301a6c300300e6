// Private: the message a session writes after DATA, for the SMTP listeners
// and the submit socket alike (smtp::MessageSink's begin/write/abort).
//
// The file is staged in the first local recipient's tmp/ (else the queue's),
// and every Return-Path field the message arrived with is dropped as it
// streams: final delivery writes the only one (store/maildir_delivery.hpp,
// final_headers()). When the whole message goes to one mailbox on the plain
// path of the commit pipeline — one local account, no remote recipient, no
// hooks, lists or delivery callbacks — that copy's final headers are written
// first, so the staged file is the Maildir copy as it is: the single-
// recipient path writes the message once, as before. Otherwise the pipeline
// writes each local copy with its own headers (CommitJob::final_headers_len).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

#include "server/commit_pipeline.hpp"
#include "smtp/session.hpp"
#include "store/maildir_delivery.hpp"

namespace wizmail::server {

struct Runtime;

class MessageStaging {
 public:
  // `plain_ok` false: never the final-headers shortcut (milters read and
  // change the message, and maybe its recipients, before the commit).
  Status begin(const Runtime& rt, CommitPipeline& pipeline, const smtp::Transaction& txn, bool plain_ok = true);
  Status write(std::string_view bytes);
  void abort() noexcept;
  bool open() const noexcept { return staged_.has_value(); }
  // End of data: flush what is held back and the buffer. The size is final.
  Status finish();
  std::uint64_t size() const noexcept { return staged_ ? staged_->size() : 0; }
  // The finished message, whole (for milters; at most max_mail_size).
  Result<std::string> contents() const;
  // Replace the finished message by `text` (a new file in the same folder).
  Status replace(std::string_view text);
  // A commit job for the finished message and the transaction's recipients
  // (locals in the order given, the first one being what the final headers
  // at the start of the file were written for). Leaves this closed.
  // With SRS on, forwarded mail (`local_submit`, alias targets) gets its
  // queue entry's sender rewritten (srs_forward_sender); `log` hears why
  // when a sender cannot be.
  // The finished message as the session wrote it (without the final
  // headers written in front of it, if any), read from the file.
  Result<std::string> read_message() const;
  // Replace the first `header_len` octets of that message by `headers`
  // (a new file in the same folder; the old one is deleted).
  Status replace_header_section(const std::string& message, std::size_t header_len, std::string_view headers);
  CommitJob take(const Runtime& rt, const smtp::Transaction& txn, std::string client_ip,
                 std::string auth_user, bool local_submit = false,
                 const std::function<void(const std::string&)>& log = {});

 private:
  std::optional<StagedMessage> staged_;
  ReturnPathFilter filter_;
  std::uint64_t final_len_ = 0;
  mutable std::string prefix_;  // the final headers, as read_message() found them
};

}  // namespace wizmail::server
