// Private: the one header-section parser. split_header_section() finds the
// fields of a message's head as they stand in it (MessageHead, the submit
// tool, the commit pipeline's callbacks and notices all read heads with it).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wizmail::mime {

// One field of a header section, as it stands in the message.
struct RawField {
  // Before the colon, WSP before the colon dropped (RFC 5322 §4.5.3,
  // obs-optional). Empty for a line that is no field: no colon, nothing
  // before it, or a continuation line before any field.
  std::string_view name;
  std::string_view text;  // the whole field: its lines, continuation lines and line ends
  std::size_t offset;     // where `text` starts in the message
};

struct HeaderSection {
  std::vector<RawField> fields;
  std::size_t head_size = 0;    // octets of the fields (up to the empty line)
  std::size_t body_offset = 0;  // first octet after the empty line (the size when there is none)
  bool ended = false;           // an empty line ended it; else the message is all header
};

// Split the head of `message` at the first empty line. Lines end at LF (a
// CR before it belongs to the line end); a line starting with SP or HT
// continues the field before it. A message without an empty line is all
// header; its last line may lack a line end.
HeaderSection split_header_section(std::string_view message);

// RFC 5322 §2.2.3 unfolding of a field's `text`: the value after the colon
// with every CR and LF removed (the WSP that follows a fold stays), leading
// and trailing white space dropped.
std::string unfold_value(std::string_view field_text);

// Every field of the head as (name, unfolded value), in order; lines that
// are no fields are left out. `text` may be the first octets of a longer
// message: when no empty line ends the head within it, a last field
// without its line end is cut off and left out.
std::vector<std::pair<std::string, std::string>> unfolded_fields(std::string_view text);

}  // namespace wizmail::mime
