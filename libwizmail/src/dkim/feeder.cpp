#include "dkim/opendkim.hpp"

namespace wizmail::dkim::detail {

Error dkim_error(std::string_view what, DKIM_STAT st, DKIM* d) {
  std::string msg(what);
  msg += ": ";
  const char* detail = d ? dkim_geterror(d) : nullptr;
  if (detail && *detail) msg += detail;
  else if (const char* s = dkim_getresultstr(st)) msg += s;
  else msg += "status " + std::to_string(st);
  return Error(st == DKIM_STAT_NORESOURCE || st == DKIM_STAT_INTERNAL ? Errc::internal : Errc::invalid_argument,
               std::move(msg));
}

Status MessageFeeder::flush_field() {
  if (field_.empty()) return {};
  std::string f = std::move(field_);
  field_.clear();
  DKIM_STAT st = dkim_header(d_, reinterpret_cast<u_char*>(f.data()), f.size());
  if (st == DKIM_STAT_SYNTAX && verifying_) return {};
  if (st != DKIM_STAT_OK) return unexpected(dkim_error("header field", st, d_));
  return {};
}

Status MessageFeeder::end_of_header() {
  if (auto s = flush_field(); !s) return s;
  in_header_ = false;
  DKIM_STAT st = dkim_eoh(d_);
  // A verifying handle says NOSIG here when the message has no signature:
  // not an error of feeding; the caller learns it from dkim_eom.
  if (st != DKIM_STAT_OK && st != DKIM_STAT_NOSIG && st != DKIM_STAT_CANTVRFY && st != DKIM_STAT_SYNTAX &&
      st != DKIM_STAT_NOKEY && st != DKIM_STAT_KEYFAIL && st != DKIM_STAT_CBTRYAGAIN && st != DKIM_STAT_CBERROR &&
      st != DKIM_STAT_REVOKED && st != DKIM_STAT_MULTIDNSREPLY)
    return unexpected(dkim_error("end of header", st, d_));
  return {};
}

Status MessageFeeder::header_line(std::string_view line) {
  if (line.empty()) return end_of_header();
  if (line.front() == ' ' || line.front() == '\t') {
    if (field_.empty()) return fail(Errc::parse, "a header section starting with a continuation line");
    field_ += "\r\n";
    field_ += line;
    return {};
  }
  if (auto s = flush_field(); !s) return s;
  field_ = line;
  return {};
}

Status MessageFeeder::body(std::string_view data) {
  out_.clear();
  out_.reserve(data.size() + data.size() / 32 + 2);
  for (char c : data) {
    if (c == '\n' && !body_cr_) out_ += '\r';
    out_ += c;
    body_cr_ = c == '\r';
  }
  if (out_.empty()) return {};
  DKIM_STAT st = dkim_body(d_, reinterpret_cast<u_char*>(out_.data()), out_.size());
  if (st != DKIM_STAT_OK) return unexpected(dkim_error("body", st, d_));
  return {};
}

Status MessageFeeder::feed(std::string_view data) {
  while (in_header_ && !data.empty()) {
    auto lf = data.find('\n');
    std::string_view part = data.substr(0, lf);
    header_size_ += part.size() + (lf == std::string_view::npos ? 0 : 1);
    if (header_size_ > max_header) return fail(Errc::limit, "header section over 1 MiB");
    line_ += part;
    if (lf == std::string_view::npos) return {};
    data.remove_prefix(lf + 1);
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    std::string line = std::move(line_);
    line_.clear();
    if (auto s = header_line(line); !s) return s;
  }
  if (data.empty()) return {};
  return body(data);
}

Result<DKIM_STAT> MessageFeeder::finish() {
  if (in_header_) {
    // No empty line: what there is was all header.
    if (!line_.empty()) {
      if (line_.back() == '\r') line_.pop_back();
      std::string line = std::move(line_);
      line_.clear();
      if (auto s = header_line(line); !s) return unexpected(s.error());
    }
    if (in_header_)
      if (auto s = end_of_header(); !s) return unexpected(s.error());
  }
  return dkim_eom(d_, nullptr);
}

}  // namespace wizmail::dkim::detail
