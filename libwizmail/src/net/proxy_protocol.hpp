// The PROXY protocol, versions 1 (text) and 2 (binary), receiver side
// (HAProxy's doc/proxy-protocol.txt): a load balancer in TCP mode puts one
// header before the client's first byte, naming the client's address and
// the address it connected to. Pure: bytes in, `need_more | done | bad`
// out, no I/O (the reading is net::Stream::read_proxy_header, which takes
// from the socket exactly the bytes this parser says are the header).
//
// Which peers must send a header is the caller's policy
// (proxy_trusted_networks, docs/proxy-protocol.md); this module only reads
// one, strictly: any byte that does not match the specification is `bad`,
// as early as it can be seen (a client that is not a proxy is refused at
// its first wrong byte, not after a timeout).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "util/ip.hpp"

namespace wizmail::net::proxy {

// The longest v1 line with its CRLF ("PROXY UNKNOWN" with two full IPv6
// addresses and ports): a line without CRLF within it is refused.
inline constexpr std::size_t kV1MaxSize = 107;
// v2: the fixed part, and the most bytes of addresses and TLVs accepted
// after it (the length field allows 65535; HAProxy's own TLVs — ALPN, SNI,
// unique id, SSL details — stay far below this).
inline constexpr std::size_t kV2FixedSize = 16;
inline constexpr std::size_t kV2MaxAddressSize = 2048;
inline constexpr std::size_t kMaxHeaderSize = kV2FixedSize + kV2MaxAddressSize;

struct Endpoint {
  util::IpAddress address;
  std::uint16_t port = 0;
};

struct Header {
  int version = 0;  // 1 or 2
  // The proxy's own connection (v2 LOCAL: its health checks), or a
  // connection whose addresses the proxy could not or did not give (v1
  // UNKNOWN, v2 UNSPEC or AF_UNIX): the receiver uses the real peer.
  bool local = false;
  Endpoint source, destination;  // only when !local
  std::size_t size = 0;          // bytes of the header, TLVs included
  // What it was, for the logs: "v2 PROXY TCP4", "v2 LOCAL", "v1 UNKNOWN".
  std::string what;
};

struct ParseResult {
  enum class Status { need_more, done, bad };
  Status status = Status::need_more;
  Header header;       // when done
  std::string reason;  // when bad
};

// `data`: every byte received so far from the start of the connection (a
// header is never longer than kMaxHeaderSize; bytes after it are not
// looked at). need_more: `data` is a proper prefix of a header that may
// still be valid, so every byte of it belongs to the header.
ParseResult parse(std::string_view data);

// Whether the first bytes a client sent look like a PROXY header (v1
// "PROXY " or the start of the v2 signature, at least its first five bytes
// "\r\n\r\n\0", which no SMTP or POP3 client sends): for a peer that may
// not send one (not in proxy_trusted_networks), so the session refuses it
// by name instead of answering it as a command.
bool looks_like_header(std::string_view first_bytes) noexcept;

}  // namespace wizmail::net::proxy
