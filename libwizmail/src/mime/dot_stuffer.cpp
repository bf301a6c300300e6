#include "mime/dot_stuffer.hpp"

#include <cstring>

namespace wizmail::mime {

void DotStuffer::end_line() {
  if (in_header_) {
    if (line_empty_) {
      in_header_ = false;
      if (body_lines_ == 0) done_ = true;
    }
  } else if (body_lines_ > 0) {
    if (--body_lines_ == 0) done_ = true;
  }
  line_start_ = true;
  line_empty_ = true;
}

bool DotStuffer::feed(std::string_view in, std::string& out) {
  if (done_) return false;
  out.reserve(out.size() + in.size() + in.size() / 32 + 4);
  const char* p = in.data();
  const char* end = p + in.size();
  while (p < end) {
    if (pending_cr_) {
      pending_cr_ = false;
      if (*p == '\n') {
        out += "\r\n";
        ++p;
        end_line();
        if (done_) return false;
        continue;
      }
      // A bare CR is ordinary data.
      out += '\r';
      line_empty_ = false;
    }
    if (line_start_) {
      line_start_ = false;
      if (*p == '.') out += '.';
    }
    // Copy the run of ordinary octets up to the next CR or LF in one go.
    const char* q = p;
    while (q < end && *q != '\r' && *q != '\n') ++q;
    if (q > p) {
      out.append(p, static_cast<std::size_t>(q - p));
      line_empty_ = false;
      p = q;
      continue;
    }
    if (*p == '\r') {
      pending_cr_ = true;
      ++p;
      continue;
    }
    // A bare LF.
    out += "\r\n";
    ++p;
    end_line();
    if (done_) return false;
  }
  return true;
}

void DotStuffer::finish(std::string& out) {
  if (!done_) {
    if (pending_cr_) {
      out += "\r\n";
      pending_cr_ = false;
      line_start_ = true;
    } else if (!line_start_) {
      out += "\r\n";
      line_start_ = true;
    }
  }
  out += ".\r\n";
  done_ = true;
}

std::size_t transmitted_size(std::string_view content) noexcept {
  std::size_t n = 0;
  char prev = '\0';
  for (char c : content) {
    if (c == '\n' && prev != '\r') ++n;
    ++n;
    prev = c;
  }
  return n;
}

}  // namespace wizmail::mime
