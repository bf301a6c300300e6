// The control protocol's JSON reader (wizmail/admin/control.hpp): nlohmann's
// parser (RFC 8259 grammar, UTF-8 validation, escapes and surrogate pairs)
// driven through its SAX interface into our plain Json value, with the
// protocol's own limits on top: no duplicate member names, nesting of at
// most 32, at most 256 members per object, finite numbers only. The
// parser is iterative, so a hostile nesting cannot overflow the stack.
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "util/strings.hpp"
#include "wizmail/admin/control.hpp"

namespace wizmail::control {

namespace {

constexpr std::size_t kMaxDepth = 32;
constexpr std::size_t kMaxMembers = 256;  // per object (duplicate check is linear)

class Builder : public nlohmann::json_sax<nlohmann::json> {
 public:
  // Why the document was refused: the parser's message, or one of ours.
  std::string error;
  std::optional<Json> root;

  bool null() override { return put(Json{}); }
  bool boolean(bool v) override {
    Json j;
    j.kind = Json::Kind::boolean;
    j.b = v;
    return put(std::move(j));
  }
  bool number_integer(number_integer_t v) override { return number(static_cast<double>(v)); }
  bool number_unsigned(number_unsigned_t v) override { return number(static_cast<double>(v)); }
  bool number_float(number_float_t v, const string_t&) override { return number(v); }
  bool string(string_t& v) override {
    Json j;
    j.kind = Json::Kind::string;
    j.s = std::move(v);
    return put(std::move(j));
  }
  bool binary(binary_t&) override { return refuse("binary values are not JSON"); }
  bool start_object(std::size_t) override { return open(Json::Kind::object); }
  bool key(string_t& k) override {
    const Json& obj = stack_.back();
    if (obj.get(k)) return refuse(util::cat("duplicate member \"", k, "\""));
    if (obj.members.size() >= kMaxMembers) return refuse("too many members");
    keys_.push_back(std::move(k));
    return true;
  }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(Json::Kind::array); }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& ex) override {
    // "[json.exception.parse_error.101] parse error at line 1, column 3: ..."
    std::string what = ex.what();
    if (auto p = what.find("] "); p != std::string::npos) what.erase(0, p + 2);
    return refuse(what);
  }

 private:
  bool refuse(std::string why) {
    if (error.empty()) error = std::move(why);
    return false;
  }
  bool number(double d) {
    if (!std::isfinite(d)) return refuse("number out of range");
    Json j;
    j.kind = Json::Kind::number;
    j.n = d;
    return put(std::move(j));
  }
  bool open(Json::Kind kind) {
    if (stack_.size() >= kMaxDepth) return refuse("nested too deeply");
    Json j;
    j.kind = kind;
    stack_.push_back(std::move(j));
    return true;
  }
  bool close() {
    Json done = std::move(stack_.back());
    stack_.pop_back();
    return put(std::move(done));
  }
  // A finished value goes into the open array or object, or is the document.
  bool put(Json v) {
    if (stack_.empty()) {
      root = std::move(v);
      return true;
    }
    Json& parent = stack_.back();
    if (parent.kind == Json::Kind::array) {
      parent.items.push_back(std::move(v));
    } else {
      parent.members.emplace_back(std::move(keys_.back()), std::move(v));
      keys_.pop_back();
    }
    return true;
  }

  std::vector<Json> stack_;        // the arrays and objects still open
  std::vector<std::string> keys_;  // the member name of each open object's pending value
};

}  // namespace

Json::Json() = default;

const Json* Json::get(std::string_view key) const noexcept {
  if (kind != Kind::object) return nullptr;
  for (const auto& [k, v] : members)
    if (k == key) return &v;
  return nullptr;
}

Result<Json> parse_json(std::string_view text) {
  Builder b;
  // strict: nothing may follow the value (but white space).
  bool ok = nlohmann::json::sax_parse(text, &b, nlohmann::json::input_format_t::json, true);
  if (!ok || !b.root) {
    return fail(Errc::invalid_argument,
                util::cat("bad JSON: ", b.error.empty() ? std::string("incomplete document") : b.error));
  }
  return std::move(*b.root);
}

}  // namespace wizmail::control
