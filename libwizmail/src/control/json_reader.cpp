// A strict JSON reader for the control protocol (wizmail/admin/control.hpp).
#include <cmath>
#include <cstdlib>
#include <string>

#include "util/utf8.hpp"
#include "wizmail/admin/control.hpp"

namespace wizmail::control {

namespace {

constexpr int kMaxDepth = 32;
constexpr std::size_t kMaxMembers = 256;  // per object (duplicate check is linear)

class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}

  Result<Json> document() {
    auto v = value(0);
    if (!v) return v;
    ws();
    if (i_ != s_.size()) return error("trailing characters after the value");
    return v;
  }

 private:
  unexpected<Error> error(std::string_view why) const {
    return fail(Errc::invalid_argument,
                "bad JSON at byte " + std::to_string(i_) + ": " + std::string(why));
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }
  bool literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }

  static Json boolean(bool v) {
    Json j;
    j.kind = Json::Kind::boolean;
    j.b = v;
    return j;
  }

  Result<Json> value(int depth) {
    ws();
    if (i_ >= s_.size()) return error("value expected");
    char c = s_[i_];
    if ((c == '{' || c == '[') && depth >= kMaxDepth) return error("nested too deeply");
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"') {
      auto str = string();
      if (!str) return unexpected(str.error());
      Json j;
      j.kind = Json::Kind::string;
      j.s = std::move(*str);
      return j;
    }
    if (literal("true")) return boolean(true);
    if (literal("false")) return boolean(false);
    if (literal("null")) return Json{};
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    return error("unexpected character");
  }

  Result<Json> number() {
    std::size_t start = i_;
    auto digit = [&] { return i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9'; };
    if (s_[i_] == '-') ++i_;
    if (!digit()) return error("digit expected");
    if (s_[i_] == '0') {
      ++i_;
      if (digit()) return error("leading zero");
    } else {
      while (digit()) ++i_;
    }
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      if (!digit()) return error("digit expected after '.'");
      while (digit()) ++i_;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (!digit()) return error("digit expected in exponent");
      while (digit()) ++i_;
    }
    std::string text(s_.substr(start, i_ - start));
    double d = std::strtod(text.c_str(), nullptr);
    if (!std::isfinite(d)) return error("number out of range");
    Json j;
    j.kind = Json::Kind::number;
    j.n = d;
    return j;
  }

  static void put_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::optional<std::uint32_t> hex4() {
    if (s_.size() - i_ < 4) return std::nullopt;
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<std::uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<std::uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<std::uint32_t>(c - 'A' + 10);
      else return std::nullopt;
    }
    return v;
  }

  Result<std::string> string() {
    ++i_;  // "
    std::string out;
    for (;;) {
      if (i_ >= s_.size()) return error("unterminated string");
      char c = s_[i_];
      if (c == '"') {
        ++i_;
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) return error("control character in string");
      if (c == '\\') {
        ++i_;
        if (i_ >= s_.size()) return error("unterminated escape");
        char e = s_[i_++];
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            auto cp = hex4();
            if (!cp) return error("bad \\u escape");
            if (*cp >= 0xDC00 && *cp <= 0xDFFF) return error("lone low surrogate");
            if (*cp >= 0xD800 && *cp <= 0xDBFF) {
              if (!literal("\\u")) return error("lone high surrogate");
              auto lo = hex4();
              if (!lo || *lo < 0xDC00 || *lo > 0xDFFF) return error("bad surrogate pair");
              *cp = 0x10000 + ((*cp - 0xD800) << 10) + (*lo - 0xDC00);
            }
            put_utf8(out, *cp);
            break;
          }
          default: return error("bad escape");
        }
        continue;
      }
      auto n = util::utf8_sequence_length(s_.substr(i_));
      if (n == 0) return error("invalid UTF-8");
      out.append(s_.substr(i_, n));
      i_ += n;
    }
  }

  Result<Json> array(int depth) {
    ++i_;  // [
    Json out;
    out.kind = Json::Kind::array;
    ws();
    if (i_ < s_.size() && s_[i_] == ']') {
      ++i_;
      return out;
    }
    for (;;) {
      auto v = value(depth + 1);
      if (!v) return v;
      out.items.push_back(std::move(*v));
      ws();
      if (i_ >= s_.size()) return error("unterminated array");
      if (s_[i_] == ',') {
        ++i_;
        continue;
      }
      if (s_[i_] == ']') {
        ++i_;
        return out;
      }
      return error("',' or ']' expected");
    }
  }

  Result<Json> object(int depth) {
    ++i_;  // {
    Json out;
    out.kind = Json::Kind::object;
    ws();
    if (i_ < s_.size() && s_[i_] == '}') {
      ++i_;
      return out;
    }
    for (;;) {
      ws();
      if (i_ >= s_.size() || s_[i_] != '"') return error("member name expected");
      auto key = string();
      if (!key) return unexpected(key.error());
      ws();
      if (i_ >= s_.size() || s_[i_] != ':') return error("':' expected");
      ++i_;
      auto v = value(depth + 1);
      if (!v) return v;
      if (out.get(*key)) return error("duplicate member");
      if (out.members.size() >= kMaxMembers) return error("too many members");
      out.members.emplace_back(std::move(*key), std::move(*v));
      ws();
      if (i_ >= s_.size()) return error("unterminated object");
      if (s_[i_] == ',') {
        ++i_;
        continue;
      }
      if (s_[i_] == '}') {
        ++i_;
        return out;
      }
      return error("',' or '}' expected");
    }
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

}  // namespace

Json::Json() = default;

const Json* Json::get(std::string_view key) const noexcept {
  if (kind != Kind::object) return nullptr;
  for (const auto& [k, v] : members)
    if (k == key) return &v;
  return nullptr;
}

Result<Json> parse_json(std::string_view text) { return Reader(text).document(); }

}  // namespace wizmail::control
