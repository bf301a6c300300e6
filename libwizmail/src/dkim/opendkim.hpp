// RAII over libopendkim's handles and the one routine that feeds it a
// message: header fields one at a time (folds kept, CRLF), then the body in
// chunks with every line end made CRLF. Private to the dkim area.
#pragma once

// Debian's dkim.h is a C header that spells its booleans _Bool, which C++
// does not have; C's _Bool and C++'s bool are the same type in the ABI.
#include <sys/types.h>
#define _Bool bool
#include <opendkim/dkim.h>
#undef _Bool

#include <memory>
#include <string>
#include <string_view>

#include "wizmail/error.hpp"

namespace wizmail::dkim::detail {

struct LibClose {
  void operator()(DKIM_LIB* l) const noexcept { dkim_close(l); }
};
struct HandleFree {
  void operator()(DKIM* d) const noexcept { dkim_free(d); }
};
using Lib = std::unique_ptr<DKIM_LIB, LibClose>;
using Handle = std::unique_ptr<DKIM, HandleFree>;

// "what: <library's words>" for a failed call on `d` (may be null).
Error dkim_error(std::string_view what, DKIM_STAT st, DKIM* d);

// Feeds one message to a signing or verifying handle. feed() any number of
// times, then finish() (which calls dkim_eom).
class MessageFeeder {
 public:
  // `verifying`: a header field the library refuses (a garbled
  // DKIM-Signature) is that signature's problem, reported with its result,
  // not the message's.
  MessageFeeder(DKIM* d, bool verifying) : d_(d), verifying_(verifying) {}
  Status feed(std::string_view data);
  // Returns dkim_eom's status (the caller decides what it means).
  Result<DKIM_STAT> finish();

  static constexpr std::size_t max_header = 1 << 20;

 private:
  Status header_line(std::string_view line);
  Status flush_field();
  Status end_of_header();
  Status body(std::string_view data);

  DKIM* d_;
  bool verifying_;
  bool in_header_ = true;
  std::string line_;    // header: the line being read
  std::string field_;   // header: the field being gathered (folds as CRLF)
  std::size_t header_size_ = 0;
  bool body_cr_ = false;  // body: the last octet fed was CR
  std::string out_;
};

}  // namespace wizmail::dkim::detail
