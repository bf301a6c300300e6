#include "milter/codec.hpp"

#include <cstring>

namespace wizmail::milter {

namespace {

void put32(std::string& out, std::uint32_t v) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>(v >> 16));
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}

std::uint32_t get32(std::string_view s) {
  auto b = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(s[i])); };
  return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
}

void put_str(std::string& out, std::string_view s) {
  // A NUL inside would end the string early at the milter: cut there.
  out.append(s.substr(0, s.find('\0')));
  out.push_back('\0');
}

// Reads NUL-terminated strings from a packet's data.
struct Strings {
  std::string_view rest;
  std::optional<std::string_view> next() {
    auto nul = rest.find('\0');
    if (nul == std::string_view::npos) return std::nullopt;
    auto s = rest.substr(0, nul);
    rest.remove_prefix(nul + 1);
    return s;
  }
};

}  // namespace

std::string packet(char command, std::string_view data) {
  std::string out;
  out.reserve(5 + data.size());
  put32(out, static_cast<std::uint32_t>(data.size() + 1));
  out.push_back(command);
  out.append(data);
  return out;
}

std::string encode_optneg(std::uint32_t version, std::uint32_t actions, std::uint32_t protocol) {
  std::string d;
  put32(d, version);
  put32(d, actions);
  put32(d, protocol);
  return packet(cmd::optneg, d);
}

std::string encode_macros(char for_command, const Macros& macros) {
  std::string d(1, for_command);
  for (const auto& [name, value] : macros) {
    put_str(d, name);
    put_str(d, value);
  }
  return packet(cmd::macro, d);
}

std::string encode_connect(std::string_view hostname, char family, std::uint16_t port, std::string_view address) {
  std::string d;
  put_str(d, hostname);
  d.push_back(family);
  if (family != 'U') {
    d.push_back(static_cast<char>(port >> 8));
    d.push_back(static_cast<char>(port));
    put_str(d, address);
  }
  return packet(cmd::connect, d);
}

std::string encode_helo(std::string_view name) {
  std::string d;
  put_str(d, name);
  return packet(cmd::helo, d);
}

std::string encode_envelope(char command, std::string_view address, const std::vector<std::string>& args) {
  std::string d;
  std::string a;
  a.reserve(address.size() + 2);
  a.push_back('<');
  a.append(address);
  a.push_back('>');
  put_str(d, a);
  for (const auto& x : args) put_str(d, x);
  return packet(command, d);
}

std::string encode_header(std::string_view name, std::string_view value) {
  std::string d;
  put_str(d, name);
  put_str(d, value);
  return packet(cmd::header, d);
}

std::string encode_body(std::string_view chunk) { return packet(cmd::body, chunk.substr(0, kChunk)); }

std::string encode_unknown(std::string_view line) {
  std::string d;
  put_str(d, line);
  return packet(cmd::unknown, d);
}

std::string encode_simple(char command) { return packet(command, {}); }

Result<std::optional<PacketReader::Packet>> PacketReader::next() {
  if (buf_.size() - pos_ < 4) return std::optional<Packet>{};
  std::uint32_t len = get32(std::string_view(buf_).substr(pos_, 4));
  if (len == 0) return unexpected(Error{Errc::protocol, "milter packet of length 0"});
  if (len > kMaxPacket)
    return unexpected(Error{Errc::protocol, "milter packet of " + std::to_string(len) + " octets (too long)"});
  if (buf_.size() - pos_ - 4 < len) return std::optional<Packet>{};
  Packet p;
  p.code = buf_[pos_ + 4];
  p.data.assign(buf_, pos_ + 5, len - 1);
  pos_ += 4 + len;
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > 65536) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  return std::optional<Packet>{std::move(p)};
}

Result<Negotiated> decode_optneg(const PacketReader::Packet& p, std::uint32_t offered_actions,
                                 std::uint32_t offered_protocol) {
  if (p.code != rep::optneg)
    return unexpected(Error{Errc::protocol, std::string("negotiation answered with code '") + p.code + "'"});
  if (p.data.size() < 12) return unexpected(Error{Errc::protocol, "negotiation reply too short"});
  Negotiated n;
  std::string_view d = p.data;
  n.version = get32(d);
  n.actions = get32(d.substr(4));
  n.protocol = get32(d.substr(8));
  if (n.version < 2) return unexpected(Error{Errc::protocol, "milter protocol version " + std::to_string(n.version)});
  if (n.actions & ~offered_actions)
    return unexpected(Error{Errc::protocol, "milter asks for actions not offered"});
  if (n.protocol & ~offered_protocol)
    return unexpected(Error{Errc::protocol, "milter asks for protocol steps not offered"});
  d.remove_prefix(12);
  // Optional macro lists: (stage, "name name …\0") pairs.
  while (!d.empty()) {
    if (d.size() < 5) return unexpected(Error{Errc::protocol, "truncated macro list in negotiation"});
    std::uint32_t stage = get32(d);
    d.remove_prefix(4);
    auto nul = d.find('\0');
    if (nul == std::string_view::npos || stage >= kStages)
      return unexpected(Error{Errc::protocol, "bad macro list in negotiation"});
    std::vector<std::string> names;
    std::string_view list = d.substr(0, nul);
    d.remove_prefix(nul + 1);
    std::size_t i = 0;
    while (i < list.size()) {
      auto j = list.find(' ', i);
      if (j == std::string_view::npos) j = list.size();
      if (j > i) names.emplace_back(list.substr(i, j - i));
      i = j + 1;
    }
    n.symlist[stage] = std::move(names);
  }
  return n;
}

bool valid_reply_code(std::string_view text) noexcept {
  if (text.size() < 3) return false;
  const char cls = text[0];
  if (cls != '4' && cls != '5') return false;
  std::size_t start = 0;
  for (;;) {
    auto end = text.find("\r\n", start);
    std::string_view line = text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (line.size() < 3 || line[0] != cls || line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9')
      return false;
    if (line.size() > 3 && line[3] != ' ' && line[3] != '-') return false;
    const bool last = end == std::string_view::npos;
    if (line.size() > 3 && (line[3] == '-') == last) return false;  // '-' on all lines but the last
    if (line.substr(0, 3) != text.substr(0, 3)) return false;
    // An enhanced code, when present, is of the same class.
    if (line.size() > 5 && line[5] == '.' && line[4] != cls) return false;
    for (char c : line)
      if (c == '\r' || c == '\n' || c == '\0') return false;
    if (last) return true;
    start = end + 2;
  }
}

Result<Reply> decode_reply(const PacketReader::Packet& p) {
  using K = Reply::Kind;
  Reply r;
  auto none = [&](K k) -> Result<Reply> {
    if (!p.data.empty()) return unexpected(Error{Errc::protocol, std::string("milter reply '") + p.code + "' with data"});
    r.kind = k;
    return r;
  };
  Strings s{p.data};
  auto need = [&](std::optional<std::string_view> v, std::string& into) {
    if (!v) return false;
    into.assign(*v);
    return true;
  };
  auto malformed = [&] { return unexpected(Error{Errc::protocol, std::string("malformed milter reply '") + p.code + "'"}); };
  switch (p.code) {
    case rep::accept: return none(K::accept);
    case rep::cont: return none(K::cont);
    case rep::reject: return none(K::reject);
    case rep::tempfail: return none(K::tempfail);
    case rep::discard: return none(K::discard);
    case rep::skip: return none(K::skip);
    case rep::progress: return none(K::progress);
    case rep::shutdown: return none(K::shutdown);
    case rep::conn_fail: return none(K::conn_fail);
    case rep::replycode: {
      r.kind = K::replycode;
      if (!need(s.next(), r.text) || !s.rest.empty() || !valid_reply_code(r.text)) return malformed();
      return r;
    }
    case rep::quarantine:
      r.kind = K::quarantine;
      if (!need(s.next(), r.text) || !s.rest.empty()) return malformed();
      return r;
    case rep::addheader:
      r.kind = K::addheader;
      if (!need(s.next(), r.name) || !need(s.next(), r.value) || !s.rest.empty() || r.name.empty()) return malformed();
      return r;
    case rep::chgheader:
    case rep::insheader:
      r.kind = p.code == rep::chgheader ? K::chgheader : K::insheader;
      if (p.data.size() < 4) return malformed();
      r.index = get32(p.data);
      s.rest.remove_prefix(4);
      if (!need(s.next(), r.name) || !need(s.next(), r.value) || !s.rest.empty() || r.name.empty()) return malformed();
      return r;
    case rep::chgfrom:
    case rep::addrcpt_par: {
      r.kind = p.code == rep::chgfrom ? K::chgfrom : K::addrcpt_par;
      if (!need(s.next(), r.value) || r.value.empty()) return malformed();
      if (!s.rest.empty() && !need(s.next(), r.args)) return malformed();
      if (!s.rest.empty()) return malformed();
      return r;
    }
    case rep::addrcpt:
    case rep::delrcpt:
      r.kind = p.code == rep::addrcpt ? K::addrcpt : K::delrcpt;
      if (!need(s.next(), r.value) || !s.rest.empty() || r.value.empty()) return malformed();
      return r;
    case rep::replbody:
      r.kind = K::replbody;
      r.body = p.data;
      return r;
    default: break;
  }
  return unexpected(Error{Errc::protocol, std::string("unknown milter reply code 0x") +
                                              "0123456789abcdef"[(static_cast<unsigned char>(p.code) >> 4) & 15] +
                                              "0123456789abcdef"[static_cast<unsigned char>(p.code) & 15]});
}

}  // namespace wizmail::milter
