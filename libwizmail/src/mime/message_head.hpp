// Private: a message split into its header fields (raw bytes kept, folding
// included) and its body, for the edits lists and hooks make.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wizmail::mime {

class MessageHead {
 public:
  // Split at the first empty line. A message without one is all header
  // (the body is empty); lines that are not fields stay as they are.
  explicit MessageHead(std::string_view message);

  struct Field {
    std::string name;  // as written
    std::string raw;   // the whole field, CRLF line ends, folding kept
  };
  const std::vector<Field>& fields() const noexcept { return fields_; }
  const std::string& body() const noexcept { return body_; }

  // The unfolded value of the first field `name` (case-insensitive), "" if none.
  std::string get(std::string_view name) const;
  bool has(std::string_view name) const;
  std::size_t count(std::string_view name) const;
  std::vector<std::string> get_all(std::string_view name) const;
  // Every field as (name, unfolded value), in order.
  std::vector<std::pair<std::string, std::string>> unfolded() const;

  void remove(std::string_view name);
  // Remove every field whose name starts with `prefix` (case-insensitive).
  void remove_prefix(std::string_view prefix);
  // Replace every `name` field by one (appended at the place of the first,
  // or at the end when there was none).
  void set(std::string_view name, std::string_view value);
  void prepend(std::string_view name, std::string_view value);
  void append(std::string_view name, std::string_view value);

  // Header fields, the empty line, the body.
  std::string str() const;

 private:
  std::vector<Field> fields_;
  std::string body_;
};

// The address inside a header value such as "Name <a@b>" or "a@b (c)";
// lower-cased domain kept as written. "" when none is found.
std::string extract_address(std::string_view value);

}  // namespace wizmail::mime
