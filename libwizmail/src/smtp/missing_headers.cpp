#include "smtp/missing_headers.hpp"

#include <cstring>

namespace wizmail::smtp {

namespace {

// RFC 5322 ftext: printable US-ASCII except ':'.
constexpr bool ftext(char c) noexcept {
  auto u = static_cast<unsigned char>(c);
  return u >= 33 && u <= 126 && c != ':';
}

}  // namespace

void MissingHeaders::start(MessageSink& next, std::string date, std::string message_id) {
  next_ = &next;
  date_ = std::move(date);
  message_id_ = std::move(message_id);
  st_ = St::line_start;
  first_line_ = true;
  held_.clear();
  name_len_ = line_len_ = 0;
  wsp_ = false;
  has_date_ = has_message_id_ = false;
  added_ = 0;
  status_ = {};
}

void MissingHeaders::note_field() noexcept {
  auto is = [&](const char* n) {
    std::size_t len = std::strlen(n);
    return name_len_ == len && std::memcmp(name_, n, len) == 0;
  };
  if (is("date")) has_date_ = true;
  else if (is("message-id")) has_message_id_ = true;
}

Status MissingHeaders::insert(bool blank_line) {
  std::string add;
  if (!has_date_) add += "Date: " + date_ + "\r\n";
  if (!has_message_id_) add += "Message-ID: " + message_id_ + "\r\n";
  if (blank_line) add += "\r\n";
  st_ = St::body;
  if (add.empty()) return {};
  added_ += static_cast<std::int64_t>(add.size());
  return next_->write(add);
}

Status MissingHeaders::write(std::string_view in) {
  if (!status_) return status_;
  const char* p = in.data();
  const char* const end = p + in.size();
  const char* span = p;  // input not yet passed on
  auto pass = [&](const char* upto) {
    if (status_ && upto > span) status_ = next_->write(std::string_view(span, static_cast<std::size_t>(upto - span)));
    span = upto;
    return static_cast<bool>(status_);
  };
  // The undecided line is a field: what was held of it in earlier chunks
  // goes on now, the rest (from `span`) with the line.
  auto flush_held = [&] {
    if (status_ && !held_.empty()) {
      status_ = next_->write(held_);
      held_.clear();
    }
    return static_cast<bool>(status_);
  };
  while (p < end && status_) {
    switch (st_) {
      case St::body:
        p = end;
        break;
      case St::line_start: {
        char c = *p;
        if (c == '\r' || c == '\n') {
          // The empty line ends the header section (a bare CR or LF refuses
          // the message at end of data anyway).
          if (!pass(p)) break;
          status_ = insert(false);
          break;
        }
        if ((c == ' ' || c == '\t') && !first_line_) {
          st_ = St::rest_of_line;
          break;
        }
        if (!pass(p)) break;  // hold the line back from here
        st_ = St::name;
        name_len_ = line_len_ = 0;
        wsp_ = false;
        break;
      }
      case St::name: {
        char c = *p;
        if (c == ':' && name_len_ > 0) {
          note_field();
          ++p;
          if (!flush_held()) break;
          st_ = St::rest_of_line;
          break;
        }
        bool more = line_len_ < kMaxHeld &&
                    ((ftext(c) && !wsp_) || ((c == ' ' || c == '\t') && name_len_ > 0));
        if (!more) {
          // Not "name:": the body starts with this line. Its bytes held so
          // far (held_, then this input from `span`) follow the fields.
          status_ = insert(true);
          flush_held();
          break;
        }
        if (c == ' ' || c == '\t') {
          wsp_ = true;
        } else {
          if (name_len_ < sizeof name_)
            name_[name_len_] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
          ++name_len_;
        }
        ++line_len_;
        ++p;
        break;
      }
      case St::rest_of_line: {
        const void* lf = std::memchr(p, '\n', static_cast<std::size_t>(end - p));
        if (!lf) {
          p = end;
          break;
        }
        p = static_cast<const char*>(lf) + 1;
        first_line_ = false;
        st_ = St::line_start;
        break;
      }
    }
  }
  if (!status_) return status_;
  if (st_ == St::name) {
    // The chunk ended inside an undecided line: keep its start.
    held_.append(span, static_cast<std::size_t>(end - span));
    return {};
  }
  pass(end);
  return status_;
}

Status MissingHeaders::finish() {
  if (!status_) return status_;
  switch (st_) {
    case St::body:
      return {};
    case St::name: {
      // Data ended in the middle of an undecided line (only after a bare CR,
      // which refuses the message): it is not a field.
      std::string held = std::move(held_);
      held_.clear();
      status_ = insert(true);
      if (status_ && !held.empty()) status_ = next_->write(held);
      return status_;
    }
    case St::line_start:
    case St::rest_of_line:
      // Only header fields (or nothing at all): the fields go at the end.
      status_ = insert(false);
      return status_;
  }
  return status_;
}

}  // namespace wizmail::smtp
