#include "smtp/body.hpp"

#include <cstring>

namespace wizmail::smtp {

namespace {

// The first CR or LF in [p, end), or nullptr.
const char* find_eol(const char* p, const char* end) noexcept {
  auto n = static_cast<std::size_t>(end - p);
  const char* lf = static_cast<const char*>(std::memchr(p, '\n', n));
  std::size_t upto = lf ? static_cast<std::size_t>(lf - p) : n;
  const char* cr = static_cast<const char*>(std::memchr(p, '\r', upto));
  return cr ? cr : lf;
}

}  // namespace

void DataReader::begin(std::int64_t max_size) noexcept {
  st_ = St::line_start;
  max_size_ = max_size;
  size_ = 0;
  total_ = 0;
  line_len_ = 0;
  in_headers_ = true;
  head_len_ = 0;
  received_ = 0;
  bare_lf_ = bare_cr_ = too_long_ = too_big_ = false;
  sink_status_ = {};
}

void DataReader::emit(const char* p, std::size_t n, MessageSink& sink) {
  if (n == 0) return;
  // Counted also once nothing is written any more: which refusal a message
  // gets (size, loop, long line) must not depend on where the reads ended.
  total_ += static_cast<std::int64_t>(n);
  if (total_ > max_size_) too_big_ = true;
  if (!acceptable()) return;
  size_ += static_cast<std::int64_t>(n);
  sink_status_ = sink.write(std::string_view(p, n));
}

void DataReader::end_of_line() noexcept {
  if (line_len_ > kMaxLine) too_long_ = true;
  if (in_headers_) {
    if (line_len_ == 2) {
      in_headers_ = false;  // the empty line ends the header section
    } else if (head_len_ == 9 && std::memcmp(head_, "received:", 9) == 0) {
      ++received_;
    }
  }
  line_len_ = 0;
  head_len_ = 0;
}

bool DataReader::consume(std::string_view& in, MessageSink& sink) {
  const char* p = in.data();
  const char* const end = p + in.size();
  const char* span = p;  // start of bytes not yet emitted
  while (p < end) {
    switch (st_) {
      case St::line_start:
        if (*p == '.') {
          emit(span, static_cast<std::size_t>(p - span), sink);
          ++p;
          span = p;  // the dot is either stuffing or the terminator: not data
          st_ = St::dot;
        } else {
          st_ = St::in_line;
        }
        break;
      case St::dot:
        if (*p == '\r') {
          ++p;
          span = p;  // hold the CR back until we know what follows
          st_ = St::dot_cr;
        } else {
          st_ = St::in_line;  // a stuffed line: the dot is dropped
        }
        break;
      case St::dot_cr:
        if (*p == '\n') {
          ++p;
          in = std::string_view(p, static_cast<std::size_t>(end - p));
          st_ = St::line_start;
          return true;
        }
        // ".\r" + something else: a bare CR in a stuffed line.
        emit("\r", 1, sink);
        bare_cr_ = true;
        ++line_len_;
        span = p;
        st_ = St::in_line;
        break;
      case St::in_line: {
        if (in_headers_ && head_len_ < sizeof head_) {
          while (p < end && head_len_ < sizeof head_ && *p != '\r' && *p != '\n') {
            char c = *p;
            head_[head_len_++] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
            ++p;
            ++line_len_;
          }
          if (p == end) break;
        }
        const char* q = find_eol(p, end);
        if (!q) {
          line_len_ += static_cast<std::size_t>(end - p);
          if (line_len_ > kMaxLine) too_long_ = true;
          p = end;
          break;
        }
        line_len_ += static_cast<std::size_t>(q - p) + 1;
        p = q + 1;
        if (*q == '\n') {
          bare_lf_ = true;  // stays inside a "line": no dot handling after it
          end_of_line();
        } else {
          st_ = St::cr;
        }
        break;
      }
      case St::cr:
        if (*p == '\n') {
          ++p;
          ++line_len_;
          end_of_line();
          st_ = St::line_start;
        } else {
          bare_cr_ = true;
          st_ = St::in_line;
        }
        break;
    }
  }
  emit(span, static_cast<std::size_t>(end - span), sink);
  in = {};
  return false;
}

}  // namespace wizmail::smtp
