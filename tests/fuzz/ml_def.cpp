// Fuzz target: a mailing list's ml.def (config/parser.hpp parse_ml_def).
// Properties: settings that load are written (format_ml_def, what
// save_ml_def and every count increment write) to a text that loads to the
// same settings — a list's ml.def never becomes unreadable by our own
// rewrite; an error names the file.
#include "config/parser.hpp"
#include "fuzz.hpp"

using namespace wizmail;
using wizmail::fuzz::show;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto ml = config::parse_ml_def(text, "mailbox/wiz/ml.def");
  if (!ml) {
    FUZZ_CHECK(ml.error().message.starts_with("mailbox/wiz/ml.def"));
    return 0;
  }
  FUZZ_CHECK(ml->count >= 0);
  auto written = config::format_ml_def(*ml);
  FUZZ_CHECK_MSG(written.has_value(), written ? "" : written.error().message);
  auto back = config::parse_ml_def(*written, "ml.def");
  FUZZ_CHECK_MSG(back.has_value(), show(*written));
  FUZZ_CHECK(back->count == ml->count && back->admin_mail_address == ml->admin_mail_address &&
             back->return_path == ml->return_path && back->name == ml->name);
  // The next count still fits (increment_ml_count refuses at the maximum).
  if (ml->count < INT64_MAX) {
    auto next = *ml;
    ++next.count;
    FUZZ_CHECK(config::format_ml_def(next).has_value());
  }
  return 0;
}
