// One milter: its address (inet:host:port, unix:/path), the connection to
// it, and the exchange of one command for its answer, with the timeouts of
// Postfix's milter_connect_timeout / milter_command_timeout /
// milter_content_timeout. Plain blocking sockets with poll(): the SMTP
// connection calls this from the blocking pool (docs/milter.md, Threads).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "milter/codec.hpp"
#include "wizmail/error.hpp"

namespace wizmail::milter {

struct Address {
  enum class Kind { inet, unix_socket };
  Kind kind = Kind::inet;
  std::string host;  // inet: a name or an IP (IPv6 may be in brackets)
  std::uint16_t port = 0;
  std::string path;  // unix
  std::string spec;  // as configured, for the logs
};
// "inet:host:port", "inet:[v6]:port", "inet6:host:port" or "unix:/path"
// (Postfix also accepts "local:/path" for unix).
Result<Address> parse_address(std::string_view spec);

struct Timeouts {
  std::chrono::milliseconds connect{30000};
  std::chrono::milliseconds command{30000};
  std::chrono::milliseconds content{300000};  // header, body, end of message
};

class Client {
 public:
  Client(Address address, Timeouts timeouts) : addr_(std::move(address)), t_(timeouts) {}
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connect and negotiate (version 6, every action, proto::offered).
  Status open();
  bool is_open() const noexcept { return fd_ >= 0; }
  const Negotiated& negotiated() const noexcept { return neg_; }
  const Address& address() const noexcept { return addr_; }

  // Send bytes (one or more packets) within the timeout.
  Status send(std::string_view bytes, std::chrono::milliseconds timeout);
  // The next reply that is not SMFIR_PROGRESS (which restarts the timeout).
  Result<Reply> receive(std::chrono::milliseconds timeout);
  // Best effort: SMFIC_QUIT, then close. Never waits for long.
  void quit() noexcept;
  void close() noexcept;

  const Timeouts& timeouts() const noexcept { return t_; }

 private:
  Result<PacketReader::Packet> read_packet(std::chrono::milliseconds timeout);

  Address addr_;
  Timeouts t_;
  int fd_ = -1;
  PacketReader reader_;
  Negotiated neg_;
};

}  // namespace wizmail::milter
