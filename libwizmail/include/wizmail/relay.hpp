// Outbound delivery (SPEC §6): routing (smart_host or MX look-up), the SMTP
// client, the retry-queue runner (`Relay`), delivery status notifications
// (RFC 3464 bounces) and the address/server probes behind `wizmail exists`
// and `wizmail check-smtp`.
//
//   RelayQueue (resendmail/, wizmail/queue.hpp)
//        │ claim: incoming|deferred → active
//        ▼
//   Relay ── groups recipients per destination domain ── route() ── MX/A/AAAA
//        │ one SMTP connection per destination carries many messages
//        ▼
//   per recipient: 250 → delivered (never sent again) · 5xx → failed → DSN
//                  4xx / no connection → deferred with back-off → DSN after
//                  resend_timeout minutes
//
// The Relay runs on its own io_context and thread (blocking fsyncs of the
// queue and DNS look-ups never stall an SMTP or POP3 session); DNS runs on a
// small worker pool through c-ares.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wizmail/config.hpp"
#include "wizmail/dsn.hpp"
#include "wizmail/error.hpp"
#include "wizmail/queue.hpp"

namespace wizmail {

// ---------------------------------------------------------------------------
// Routing

struct ResolverOptions {
  // "ip", "ip:port", "[v6]:port"; empty = the system resolver (resolv.conf).
  std::vector<std::string> servers;
  std::chrono::milliseconds timeout{3000};  // per try
  int tries = 2;
};

struct MailExchanger {
  std::string host;
  int preference = 0;
};

// MX records of `domain`, by preference (equal preferences in random order,
// RFC 5321 §5.1). Empty: the domain exists but has no MX (use its A/AAAA).
// Errors: Errc::not_found = NXDOMAIN (permanent); Errc::invalid_argument =
// null MX (RFC 7505, the domain accepts no mail; permanent); Errc::temporary
// = SERVFAIL, time-out, refused or any other resolver failure.
Result<std::vector<MailExchanger>> lookup_mx(std::string_view domain, const ResolverOptions& opt);

// IPv4 and IPv6 addresses of `host` (hosts file, then DNS). An IP literal
// ("192.0.2.1", "::1", "[::1]") is returned as is. Errors as lookup_mx.
Result<std::vector<std::string>> lookup_addresses(std::string_view host, const ResolverOptions& opt);

// "host", "host:port", "[v6]", "[v6]:port" → host (without brackets), port.
struct HostPort {
  std::string host;
  std::uint16_t port = 0;  // 0 when none was given
};
Result<HostPort> parse_host_port(std::string_view text);

// One host to try, with its addresses, in order.
struct Hop {
  std::string host;                    // name as found (MX target, smart host)
  std::uint16_t port = 25;
  std::vector<std::string> addresses;  // tried in order
  int preference = 0;                  // MX preference (0 for smart host / implicit MX)
};

struct RouteOptions {
  std::string smart_host;   // host[:port]; non-empty bypasses MX
  std::uint16_t port = 25;  // outbound_port (and the smart host's default)
  ResolverOptions resolver;
};

// Where mail for `domain` goes: the smart host, else the MX hosts by
// preference, else the domain's own A/AAAA (implicit MX). Hosts whose address
// look-up fails are left out; when none is left the error is temporary unless
// the domain itself does not exist (or has a null MX).
Result<std::vector<Hop>> route(std::string_view domain, const RouteOptions& opt);

RouteOptions route_options(const Config& cfg);

// ---------------------------------------------------------------------------
// SMTP replies

struct SmtpReply {
  int code = 0;                    // 3 digits
  std::string enhanced;            // "5.1.1" when the reply carries one
  std::vector<std::string> lines;  // the text of each line (after "NNN-"/"NNN ")
  bool positive() const noexcept { return code >= 200 && code < 400; }
  bool temporary() const noexcept { return code >= 400 && code < 500; }
  bool permanent() const noexcept { return code >= 500; }
  // "550 5.1.1 no such user" (lines joined with " / ").
  std::string to_string() const;
};

// ---------------------------------------------------------------------------
// Delivery status notifications (RFC 3464)

// RFC 3464 §2.3.3 Action values wizmail reports.
enum class DsnAction { failed, delayed, delivered, relayed, expanded };
std::string_view to_string(DsnAction a) noexcept;

struct DsnRecipient {
  std::string address;        // final recipient (rfc822;address, utf-8;… when not ASCII)
  std::string status;         // "5.1.1"; derived from the reply and action when empty
  std::string remote_mta;     // host that answered (empty when none did)
  std::string diagnostic;     // the peer's reply, or our reason
  int smtp_code = 0;          // the peer's reply code, 0 when none
  DsnAction action = DsnAction::failed;
  std::string original_recipient{};  // decoded ORCPT "type;address" (Original-Recipient); empty = none
};

struct DsnInput {
  std::string reporting_domain;   // `domain`: From MAILER-DAEMON@<this>
  std::string reporting_mta;      // our host name (Reporting-MTA: dns;…)
  std::string original_sender;    // envelope sender (To:)
  std::string queue_id;
  std::int64_t arrival_time = 0;  // unix seconds (Arrival-Date)
  std::int64_t now = 0;           // unix seconds (Date:, boundary)
  std::vector<DsnRecipient> recipients;
  std::string original_headers;   // header block of the message, CRLF
  // The whole message (RET=FULL on a failure notice): returned as
  // message/rfc822 instead of original_headers when not empty.
  std::string original_message{};
  std::string envelope_id{};       // ENVID (Original-Envelope-Id); empty = none
  std::int64_t will_retry_until = 0;  // delay notices: unix seconds (Will-Retry-Until)
  bool timed_out = false;         // given up after resend_timeout
};

// The whole notice, CRLF line ends: multipart/report; report-type=
// delivery-status with a human-readable part, message/delivery-status and
// the original headers (text/rfc822-headers) or message (message/rfc822).
// Its subject and text follow the recipients' actions: a failure, a delay,
// or a success report (delivered/relayed/expanded). Pure.
std::string build_dsn(const DsnInput& in);

// The header block (up to and including the empty line, at most `limit`
// octets, cut at a line end) of a message file.
Result<std::string> read_header_block(const std::filesystem::path& message, std::size_t limit = 65536);

// ---------------------------------------------------------------------------
// The queue runner

struct RelayTimeouts {
  // RFC 5321 §4.5.3.2 minimums.
  std::chrono::milliseconds connect{60'000};
  std::chrono::milliseconds greeting{300'000};
  std::chrono::milliseconds command{300'000};   // EHLO, MAIL, RCPT, RSET, STARTTLS
  std::chrono::milliseconds data_init{120'000};
  std::chrono::milliseconds data_block{180'000};
  std::chrono::milliseconds data_end{600'000};
};

struct RelayOptions {
  std::string hostname;                 // EHLO name; empty = config `domain`
  // 0 = from the config: scan every resend_scan_interval seconds, first
  // retry after one interval. Tests may use sub-second values.
  std::chrono::milliseconds scan_interval{0};
  std::chrono::milliseconds retry_base{0};
  // 0 = resend_timeout minutes.
  std::chrono::milliseconds give_up_after{0};
  // 0 = from the config (outbound_max_connections,
  // outbound_max_per_destination), read again at each reload.
  std::size_t max_connections = 0;      // overall
  std::size_t max_per_destination = 0;  // per recipient domain (or the smart host)
  std::size_t max_messages_per_connection = 100;
  RelayTimeouts timeouts;
  std::function<void(const std::string&)> log;  // one line each; may be empty
  std::function<void()> on_bounce;              // each DSN generated; may be empty
  // A node of a shared home (docs/cluster.md): whether its lease holds
  // (its heartbeat is fresh, so no other node takes its claims over).
  // While false the runner claims nothing and ends no DATA. Empty: always.
  std::function<bool()> lease_valid{};
};

struct RelayStats {
  std::uint64_t delivered = 0;      // recipients accepted by a peer
  std::uint64_t deferred = 0;       // recipient attempts that failed temporarily
  std::uint64_t failed = 0;         // recipients given up (bounced)
  std::uint64_t bounces = 0;        // DSNs generated
  std::uint64_t connections = 0;    // SMTP sessions opened
  std::uint64_t in_flight = 0;      // claimed messages now
};

// Back-off after `attempts` failed rounds of one message:
// min(base * 2^(attempts-1), max(base, 1 hour)).
std::chrono::milliseconds retry_delay(std::chrono::milliseconds base, int attempts);

class Relay {
 public:
  static Result<std::unique_ptr<Relay>> create(std::shared_ptr<const Config> config,
                                               RelayOptions options = {});
  ~Relay();  // stops at once (stop(0)) and joins
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // Start the runner thread (the queue must have been recovered).
  Status start();
  // Something was enqueued: scan now.
  void notify();
  // Retry every waiting entry now, whatever its back-off.
  void flush();
  // New configuration (reload): used from the next delivery on.
  void set_config(std::shared_ptr<const Config> config);
  // Stop claiming; deliveries in progress may finish until `grace` ends,
  // then their connections are closed and what is unfinished stays queued.
  // `done` runs on the runner thread when everything stopped (the thread
  // exits after it). Idempotent.
  void stop(std::chrono::milliseconds grace, std::function<void()> done = {});
  // Block until the runner thread has exited.
  void join();
  RelayStats stats() const;

  struct Impl;

 private:
  explicit Relay(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Remove a queue entry for `wizmail queue delete`: the envelope is taken out
// of incoming/ or deferred/ by one rename (so a runner claiming it at the same
// moment either gets it whole or not at all). An entry in active/ is refused
// with Errc::busy unless `include_active` (only safe when no server runs).
Status delete_queue_entry(const RelayQueue& queue, std::string_view id, bool include_active);

// Make every deferred entry due now (no server may be running).
Result<std::size_t> make_queue_due(const RelayQueue& queue);

// ---------------------------------------------------------------------------
// Probes (`wizmail exists`, `wizmail check-smtp`)

struct ProbeOptions {
  std::string helo_name = "localhost";
  std::string mail_from;             // empty = null sender
  RouteOptions route;                // resolver, port, smart host (ignored by exists)
  std::chrono::milliseconds timeout{30'000};  // per step
};

enum class AddressStatus { exists, does_not_exist, unknown };
std::string_view to_string(AddressStatus s) noexcept;

struct ExistsReport {
  AddressStatus status = AddressStatus::unknown;
  std::string host;          // the MX host that answered (empty when none)
  SmtpReply reply;           // its reply to RCPT (code 0 when none)
  std::string reason;        // why, in words
};
// MX look-up, connect, EHLO/HELO, MAIL FROM:<…>, RCPT TO:<address>, QUIT —
// never DATA. 2xx → exists; 5xx (or NXDOMAIN, null MX) → does_not_exist;
// anything else → unknown.
ExistsReport probe_address(std::string_view address, const ProbeOptions& opt);

struct SmtpCheckReport {
  std::string host;
  std::uint16_t port = 0;
  std::string address;                   // the IP connected to
  SmtpReply banner;
  SmtpReply ehlo;                        // code 0 when HELO had to be used
  std::vector<std::string> capabilities; // EHLO keywords with parameters
  bool starttls_offered = false;
  bool tls_ok = false;
  std::string tls_error;
  std::string tls_protocol;              // "TLSv1.3 TLS_AES_256_GCM_SHA384"
  std::string cert_subject, cert_issuer, cert_not_after;
  std::vector<std::string> capabilities_after_tls;
};
Result<SmtpCheckReport> check_smtp(std::string_view host_port, const ProbeOptions& opt);

}  // namespace wizmail
