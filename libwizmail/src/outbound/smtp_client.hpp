// One outbound SMTP session (RFC 5321 client side) on Asio coroutines:
// greeting, EHLO (HELO fallback), STARTTLS with the certificate checked
// (the relay acts on it by TLS level), PIPELINING, SIZE,
// 8BITMIME, per-recipient replies, the body streamed from the queue's data
// file with dot-stuffing, and the RFC 5321 §4.5.3.2 time-outs.
//
// An Error from any step means the connection is unusable (I/O error, time-
// out, protocol violation, closed by stop); the caller treats the recipients
// in progress as temporarily failed. SMTP replies — positive or not — are
// values. Used from one thread (or strand) at a time.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "net/tls.hpp"
#include "outbound/reply_parser.hpp"
#include "wizmail/relay.hpp"

namespace wizmail::outbound {

struct TransactionResult {
  SmtpReply mail;
  std::vector<SmtpReply> rcpts;  // one per recipient, in order (code 0: not sent)
  SmtpReply data;                // reply to DATA (code 0: not sent)
  SmtpReply end;                 // reply to the final "." (code 0: not sent)
  // Set when we refused to send (e.g. over the peer's SIZE): applies to all.
  std::optional<SmtpReply> local_failure;
};

// What a transaction carries besides sender, recipients and body.
struct MailOptions {
  std::uint64_t size = 0;   // the message size (SIZE=)
  bool eight_bit = false;   // octets over 127 in the body (BODY=8BITMIME when offered)
  bool smtputf8 = false;    // MAIL … SMTPUTF8 (the caller checked the peer offers it)
  // RFC 3461, sent only when the peer offers DSN: RET and ENVID with MAIL,
  // NOTIFY and ORCPT with each RCPT (`dsn` empty or one per recipient).
  DsnRet ret = DsnRet::unspecified;
  std::string envid;
  std::vector<DsnRequest> dsn;
  // Header fields sent before the file's first octet (a DKIM-Signature
  // computed for this message), CRLF line ends; counted in `size` by the
  // caller.
  std::string prefix{};
  // Asked once, just before the final dot: false ends the session without
  // it (the peer discards the message) and the transaction fails with
  // Errc::busy. A node of a shared home that lost its claim on the entry
  // must not finish the delivery (docs/cluster.md). Empty: always go on.
  std::function<bool()> may_finish{};
};

class SmtpClient : public std::enable_shared_from_this<SmtpClient> {
 public:
  SmtpClient(asio::any_io_executor ex, RelayTimeouts timeouts);
  ~SmtpClient();

  // Connect and read the greeting (returned whatever its code).
  asio::awaitable<Result<SmtpReply>> connect(std::string address, std::uint16_t port);
  // EHLO; HELO when EHLO is refused with 5xx. Records the capabilities.
  asio::awaitable<Result<SmtpReply>> hello(std::string name);
  // STARTTLS then the handshake. A negative reply is returned as is (the
  // session goes on in plain text); a failed handshake is an Error.
  // `verify_name` (a host name or IP address; may be empty) goes as SNI
  // and is the name the certificate is checked against: the handshake goes
  // on whatever the check finds, tls_verification() says what it found
  // (the context must trust a CA file for it to say anything but
  // "untrusted").
  asio::awaitable<Result<SmtpReply>> starttls(net::TlsContextPtr context, std::string verify_name = {});
  // One command line (without CRLF) and its reply.
  asio::awaitable<Result<SmtpReply>> command(std::string line, std::chrono::milliseconds timeout);
  // MAIL, RCPT…, DATA, body, "." — pipelined when the peer offers it.
  // A body with octets over 127 goes with BODY=8BITMIME when offered; when
  // it is not offered the message is sent anyway, as most MTAs do.
  asio::awaitable<Result<TransactionResult>> send_mail(std::string sender, std::vector<std::string> rcpts,
                                                       std::filesystem::path body, MailOptions options);
  // QUIT (reply awaited briefly), TLS close_notify (net::shutdown_tls), close.
  asio::awaitable<void> quit();
  // Close at once; a pending operation fails (used by stop).
  void close() noexcept;

  bool is_open() const noexcept { return socket_.is_open(); }
  bool is_tls() const noexcept { return tls_ != nullptr; }
  bool esmtp() const noexcept { return esmtp_; }
  const std::vector<std::string>& capabilities() const noexcept { return caps_; }
  bool has(std::string_view keyword) const { return find_capability(caps_, keyword).has_value(); }
  // Negotiated protocol and cipher, certificate subject/issuer/expiry.
  std::string tls_description() const;
  struct CertInfo {
    std::string subject, issuer, not_after;
  };
  std::optional<CertInfo> peer_certificate() const;
  // What the certificate check found (Postfix's terms): verified = the chain
  // leads to a trusted CA and the name matches; trusted = the chain is good,
  // the name is not; untrusted = the chain is not (`reason` says why).
  struct Verification {
    enum class Trust { untrusted, trusted, verified } trust = Trust::untrusted;
    std::string reason;  // OpenSSL's text of the first problem; empty when verified
  };
  Verification tls_verification() const { return verification_; }
  // "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"; empty
  // without TLS.
  std::string tls_summary() const;
  // The peer certificate's subject CN (else its whole subject); empty without.
  std::string peer_common_name() const;
  std::string remote_address() const { return remote_; }

 private:
  asio::awaitable<std::error_code> write(std::string_view data, std::chrono::milliseconds timeout);
  asio::awaitable<Result<SmtpReply>> read_reply(std::chrono::milliseconds timeout);
  void arm(std::chrono::milliseconds timeout);
  void disarm() noexcept;
  Error io_error(std::string_view what, std::error_code ec) const;

  asio::ip::tcp::socket socket_;
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket&>> tls_;
  net::TlsContextPtr tls_context_;
  asio::steady_timer timer_;
  RelayTimeouts timeouts_;
  std::string in_;  // received, not yet parsed
  ReplyParser parser_;
  std::vector<std::string> caps_;
  bool esmtp_ = false;
  bool timed_out_ = false;
  bool closed_ = false;
  std::uint64_t arm_gen_ = 0;
  std::string remote_;
  Verification verification_;
  bool chain_ok_ = true, name_ok_ = true;
  std::string first_problem_;
};

}  // namespace wizmail::outbound
