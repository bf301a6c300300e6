#include "mime/header_codec.hpp"

#include <iconv.h>

#include <cerrno>
#include <cstdint>
#include <optional>
#include <vector>

#include "util/base64.hpp"
#include "util/strings.hpp"
#include "util/utf8.hpp"

namespace wizmail::mime {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

std::string iconv_name(std::string_view charset) {
  std::string c = util::to_lower(charset);
  // RFC 2231 language suffix: "iso-2022-jp*ja".
  if (auto star = c.find('*'); star != std::string::npos) c.resize(star);
  if (c == "shift_jis" || c == "shift-jis" || c == "sjis" || c == "x-sjis" || c == "ms_kanji" ||
      c == "windows-31j" || c == "cp932")
    return "CP932";
  if (c == "utf8") return "UTF-8";
  return c;
}

struct Iconv {
  iconv_t cd = reinterpret_cast<iconv_t>(-1);
  Iconv(const std::string& to, const std::string& from) { cd = ::iconv_open(to.c_str(), from.c_str()); }
  ~Iconv() {
    if (ok()) ::iconv_close(cd);
  }
  Iconv(const Iconv&) = delete;
  Iconv& operator=(const Iconv&) = delete;
  bool ok() const { return cd != reinterpret_cast<iconv_t>(-1); }
};

// Append `in` converted by `cv` to `out`, ending in the initial shift state
// (ASCII for ISO-2022-JP). An invalid or truncated sequence: with `lossy`
// U+FFFD and the next byte, else false.
bool convert(Iconv& cv, std::string_view in, std::string& out, bool lossy) {
  char* src = const_cast<char*>(in.data());
  std::size_t left = in.size();
  char buf[1024];
  while (left > 0) {
    char* dst = buf;
    std::size_t room = sizeof buf;
    std::size_t r = ::iconv(cv.cd, &src, &left, &dst, &room);
    out.append(buf, static_cast<std::size_t>(dst - buf));
    if (r != static_cast<std::size_t>(-1) || errno == E2BIG) continue;
    if (!lossy) return false;
    out += kReplacement;
    ++src;
    --left;
    ::iconv(cv.cd, nullptr, nullptr, nullptr, nullptr);
  }
  for (;;) {
    char* dst = buf;
    std::size_t room = sizeof buf;
    std::size_t r = ::iconv(cv.cd, nullptr, nullptr, &dst, &room);
    out.append(buf, static_cast<std::size_t>(dst - buf));
    if (r == static_cast<std::size_t>(-1) && errno == E2BIG) continue;
    return true;
  }
}


int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::optional<std::string> q_decode(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '_') {
      out += ' ';
    } else if (c == '=') {
      if (i + 2 >= in.size()) return std::nullopt;
      int h = hex_value(in[i + 1]), l = hex_value(in[i + 2]);
      if (h < 0 || l < 0) return std::nullopt;
      out += static_cast<char>(h * 16 + l);
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

// Lossy conversion to UTF-8: invalid sequences become U+FFFD.
std::string to_utf8_lossy(std::string_view in, const std::string& from) {
  if (from == "utf-8" || from == "UTF-8" || from == "us-ascii") {
    if (is_utf8(in)) return std::string(in);
  }
  Iconv cv("UTF-8", from);
  if (!cv.ok()) {
    // Unknown charset: keep the ASCII, mark the rest.
    std::string out;
    for (char c : in) {
      if (static_cast<unsigned char>(c) < 0x80) out += c;
      else out += kReplacement;
    }
    return out;
  }
  std::string out;
  convert(cv, in, out, true);
  return out;
}

bool is_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

// Raw (unencoded) header bytes to UTF-8.
std::string raw_to_utf8(std::string_view s, bool& eight_bit) {
  if (s.find('\x1b') != std::string_view::npos) return to_utf8_lossy(s, "ISO-2022-JP");
  if (is_ascii(s)) return std::string(s);
  eight_bit = true;
  if (is_utf8(s)) return std::string(s);
  return to_utf8_lossy(s, "CP932");
}

// One encoded-word at `pos` ("=?cs?X?text?="): its end and decoded UTF-8.
struct Word {
  std::size_t end = 0;
  std::string utf8;
  std::string charset;
};
std::optional<Word> parse_word(std::string_view s, std::size_t pos) {
  if (s.substr(pos, 2) != "=?") return std::nullopt;
  auto q1 = s.find('?', pos + 2);
  if (q1 == std::string_view::npos || q1 + 2 >= s.size() || s[q1 + 2] != '?') return std::nullopt;
  char enc = s[q1 + 1];
  auto close = s.find("?=", q1 + 3);
  if (close == std::string_view::npos) return std::nullopt;
  std::string_view cs = s.substr(pos + 2, q1 - pos - 2);
  std::string_view text = s.substr(q1 + 3, close - q1 - 3);
  if (cs.empty() || text.find_first_of(" \t") != std::string_view::npos) return std::nullopt;
  std::optional<std::string> raw;
  if (enc == 'B' || enc == 'b') raw = util::base64_decode_lenient(text);
  else if (enc == 'Q' || enc == 'q') raw = q_decode(text);
  if (!raw) return std::nullopt;
  Word w;
  w.end = close + 2;
  w.charset = util::to_lower(cs);
  if (auto star = w.charset.find('*'); star != std::string::npos) w.charset.resize(star);
  w.utf8 = to_utf8_lossy(*raw, iconv_name(cs));
  return w;
}

}  // namespace

Result<std::string> convert_charset(std::string_view in, std::string_view from, std::string_view to) {
  Iconv cv(iconv_name(to), iconv_name(from));
  if (!cv.ok())
    return fail(Errc::invalid_argument,
                "unknown charset conversion " + std::string(from) + " -> " + std::string(to));
  std::string out;
  if (!convert(cv, in, out, false))
    return fail(Errc::parse, "text not convertible from " + std::string(from) + " to " +
                                 std::string(to));
  return out;
}

bool is_utf8(std::string_view s) noexcept { return util::valid_utf8(s); }

DecodedHeader decode_header(std::string_view value) {
  DecodedHeader out;
  std::size_t pos = 0;
  bool prev_word = false;
  std::string pending_space;  // whitespace after an encoded-word, dropped if another follows
  std::size_t raw_start = 0;
  auto flush_raw = [&](std::size_t end) {
    if (end > raw_start) out.utf8 += raw_to_utf8(value.substr(raw_start, end - raw_start), out.had_raw_8bit);
  };
  while (pos < value.size()) {
    if (value[pos] == '=' && pos + 1 < value.size() && value[pos + 1] == '?') {
      if (auto w = parse_word(value, pos)) {
        // Whitespace between two encoded-words is not part of the text.
        std::string_view between = value.substr(raw_start, pos - raw_start);
        bool only_space = between.find_first_not_of(" \t\r\n") == std::string_view::npos;
        if (!(prev_word && only_space)) flush_raw(pos);
        out.utf8 += w->utf8;
        if (!out.had_encoded_words) out.charset = w->charset;
        out.had_encoded_words = true;
        pos = w->end;
        raw_start = pos;
        prev_word = true;
        continue;
      }
    }
    if (value[pos] != ' ' && value[pos] != '\t' && value[pos] != '\r' && value[pos] != '\n') prev_word = false;
    ++pos;
  }
  flush_raw(value.size());
  return out;
}

namespace {

// Split UTF-8 into code points (invalid bytes are taken one by one).
std::vector<std::string_view> code_points(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (i + n > s.size()) n = s.size() - i;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

std::optional<std::string> encode_words(std::string_view utf8, const std::string& charset,
                                        std::size_t used) {
  std::string label = charset == "CP932" ? "Shift_JIS" : charset;
  if (label == "iso-2022-jp") label = "ISO-2022-JP";
  if (label == "utf-8") label = "UTF-8";
  const std::string head = "=?" + label + "?B?";
  auto cps = code_points(utf8);
  std::string out;
  std::size_t i = 0;
  bool first = true;
  while (i < cps.size()) {
    std::size_t budget = 75;
    if (first && used < 40) budget = 76 - used - 1;
    const std::size_t max_raw = (budget - head.size() - 2) / 4 * 3;
    // Greedy: the longest run of whole characters whose encoding fits one
    // word (a word holds a few dozen octets, so this stays linear overall).
    std::string chunk, best;
    std::size_t j = i;
    while (j < cps.size()) {
      std::string candidate = chunk + std::string(cps[j]);
      auto enc = convert_charset(candidate, "UTF-8", charset);
      if (!enc) return std::nullopt;
      if (enc->size() > max_raw && j > i) break;
      chunk = std::move(candidate);
      best = std::move(*enc);
      ++j;
      if (best.size() > max_raw) break;  // one oversized character: a word of its own
    }
    // A reader decodes each word on its own: it must give this text back.
    // (glibc's ISO-2022-JP passes ESC through, so an ESC run split over
    // two words does not; CP932 turns WAVE DASH into FULLWIDTH TILDE.)
    if (charset != "UTF-8") {
      auto back = convert_charset(best, charset, "UTF-8");
      if (!back || *back != chunk) return std::nullopt;
    }
    if (!first) out += "\r\n ";
    out += head + util::base64_encode(best) + "?=";
    first = false;
    i = j;
  }
  return out;
}

}  // namespace

std::string encode_header(std::string_view utf8, std::string_view charset, std::size_t used) {
  // As is: printable ASCII that no reader takes for an encoded-word and that
  // fits the 998-octet line. A control character (a CR or LF would start a
  // new header field) or a longer text is encoded.
  bool plain = used + utf8.size() <= 998 && utf8.find("=?") == std::string_view::npos;
  for (char c : utf8)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7F) plain = false;
  if (plain) return std::string(utf8);
  std::string cs = iconv_name(charset.empty() ? "UTF-8" : charset);
  if (cs == "utf-8") cs = "UTF-8";
  if (cs != "UTF-8")
    if (auto w = encode_words(utf8, cs, used)) return *w;
  // Invalid UTF-8 input: make it valid first so every word decodes.
  std::string clean = is_utf8(utf8) ? std::string(utf8) : to_utf8_lossy(utf8, "CP932");
  if (auto w = encode_words(clean, "UTF-8", used)) return *w;
  return clean;
}

}  // namespace wizmail::mime
