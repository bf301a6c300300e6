#include "config/table.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <climits>
#include <limits>

#include "dnsbl/dnsbl.hpp"
#include "util/ip.hpp"
#include "util/strings.hpp"

namespace wizmail::config {

namespace {

// ---- typed accessors: one template instead of a setter per key ------------

void assign(int& f, const Value& v) { f = static_cast<int>(std::get<std::int64_t>(v)); }
void assign(std::int64_t& f, const Value& v) { f = std::get<std::int64_t>(v); }
void assign(bool& f, const Value& v) { f = std::get<bool>(v); }
void assign(std::string& f, const Value& v) { f = std::get<std::string>(v); }
void assign(std::vector<std::string>& f, const Value& v) {
  f = std::get<std::vector<std::string>>(v);
}
Value wrap(int f) { return std::int64_t{f}; }
Value wrap(std::int64_t f) { return f; }
Value wrap(bool f) { return f; }
Value wrap(const std::string& f) { return f; }
Value wrap(const std::vector<std::string>& f) { return f; }

template <auto Section, auto Member>
void set_field(Config& c, const Value& v) {
  assign((c.*Section).*Member, v);
}
template <auto Section, auto Member>
Value get_field(const Config& c) {
  return wrap((c.*Section).*Member);
}
template <auto Section, auto Member>
constexpr Accessor field{&set_field<Section, Member>, &get_field<Section, Member>};

template <auto Member>
void set_account(AccountSettings& a, const Value& v) {
  assign(a.*Member, v);
}

constexpr auto smtp = &Config::smtp;
constexpr auto pop = &Config::pop;
constexpr auto srv = &Config::server;
using S = SmtpSettings;
using P = PopSettings;
using W = ServerSettings;
using A = AccountSettings;
using T = Type;
constexpr auto smtpenv = DefFile::smtpenv;
constexpr auto popenv = DefFile::popenv;
constexpr auto wizenv = DefFile::wiz98msenv;
constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();

// Items separated by commas or blanks.
std::vector<std::string> split_commas_blanks(std::string_view text) {
  std::vector<std::string> out;
  for (const auto& piece : util::split_list(text))
    for (const auto& word : util::split_list(piece, ' '))
      for (auto& item : util::split_list(word, '\t')) out.push_back(std::move(item));
  return out;
}

// dnsbl_sites: one zone[=filter][*weight] (src/dnsbl/dnsbl.hpp).
std::string check_dnsbl_site(std::string_view item) {
  auto s = dnsbl::parse_site(item);
  return s ? std::string() : s.error().message;
}

std::vector<Key> make_keys() {
  return {
      // ---- def/smtpenv.dat ----
      {.name = "port", .file = smtpenv, .type = T::integer, .default_value = "25",
       .min = 1, .max = 65535, .doc = "SMTP listener port.", .example = "2525",
       .field = field<smtp, &S::port>},
      {.name = "submission_port", .file = smtpenv, .type = T::integer, .default_value = "0",
       .min = 0, .max = 65535,
       .doc = "RFC 6409 message submission port (e.g. 587), AUTH required there; 0 = off.",
       .example = "587", .field = field<smtp, &S::submission_port>},
      {.name = "smtps_port", .file = smtpenv, .type = T::integer, .default_value = "0",
       .min = 0, .max = 65535,
       .doc = "Implicit-TLS submission port (e.g. 465, RFC 8314); needs tls_cert_file/tls_key_file; 0 = off.",
       .example = "465", .field = field<smtp, &S::smtps_port>},
      {.name = "bind_address", .file = smtpenv, .type = T::ip_list, .default_value = "",
       .doc = "Addresses the SMTP and POP3 listeners bind to; empty = all addresses.",
       .example = "127.0.0.1,::1", .field = field<smtp, &S::bind_address>},
      {.name = "host", .file = smtpenv, .type = T::hostname, .default_value = "",
       .doc = "Obsolete since manual v2.10 (moved to wiz98msenv.dat alias); still accepted "
              "with a warning and its value counts as one more local domain.",
       .example = "mail.example.org", .obsolete = true, .field = field<smtp, &S::host>},
      {.name = "subhost", .file = smtpenv, .type = T::domain_list, .default_value = "",
       .doc = "Extra mail domains handled as local (like alias).",
       .example = "example.net,192.0.2.10", .field = field<smtp, &S::subhost>},
      {.name = "relay", .file = smtpenv, .type = T::boolean, .default_value = "0",
       .doc = "1: relay mail for anybody (an open relay); 0: the anti-relay rules apply.",
       .example = "1", .field = field<smtp, &S::relay>},
      {.name = "pop_before_smtp", .file = smtpenv, .type = T::boolean, .default_value = "0",
       .doc = "1: relaying by a local sender also needs a POP3 login from the client IP "
              "within pop_befor_smtp_time_to_live.",
       .example = "1", .field = field<smtp, &S::pop_before_smtp>},
      {.name = "pop_befor_smtp_time_to_live", .file = smtpenv, .type = T::integer,
       .default_value = "30", .min = 1, .max = 10080,
       .doc = "Minutes a POP3 login allows relaying (POP before SMTP); the manual's spelling.",
       .example = "60", .synonyms = {"pop_before_smtp_time_to_live"},
       .field = field<smtp, &S::pop_befor_smtp_time_to_live>},
      {.name = "use_dustbox", .file = smtpenv, .type = T::boolean, .default_value = "0",
       .doc = "1: deleted mail is moved to the dustbox instead of being removed.",
       .example = "1", .account_override = true, .field = field<smtp, &S::use_dustbox>,
       .set_account = &set_account<&A::use_dustbox>},
      {.name = "address_permits_relay", .file = smtpenv, .type = T::cidr_list,
       .default_value = "",
       .doc = "Client IPs or CIDR blocks that bypass every relay rule.",
       .example = "192.0.2.0/24,2001:db8::/32", .field = field<smtp, &S::address_permits_relay>},
      {.name = "resend_timeout", .file = smtpenv, .type = T::integer, .default_value = "1440",
       .min = 1, .max = 525600,
       .doc = "Minutes a temporarily failing outbound message is retried before it bounces.",
       .example = "2880", .field = field<smtp, &S::resend_timeout>},
      {.name = "resend_scan_interval", .file = smtpenv, .type = T::integer,
       .default_value = "300", .min = 1, .max = 86400,
       .doc = "Seconds between scans of the retry queue (resendmail/).", .example = "60",
       .field = field<smtp, &S::resend_scan_interval>},
      {.name = "delay_warning_time", .file = smtpenv, .type = T::integer, .default_value = "4",
       .min = 0, .max = 8760,
       .doc = "Hours a message may wait in the retry queue before its sender gets one delay notice; "
              "only for recipients whose RCPT asked NOTIFY=DELAY (RFC 3461); 0 = never.",
       .example = "1", .field = field<smtp, &S::delay_warning_time>},
      {.name = "bounce_size_limit", .file = smtpenv, .type = T::bytes, .default_value = "50000",
       .min = 0, .max = 52428800,
       .doc = "Octets of a failed message returned whole in its failure notice when the sender "
              "asked RET=FULL; a larger message is returned as its headers only.",
       .example = "1M", .field = field<smtp, &S::bounce_size_limit>},
      {.name = "send_permits_only_smtp_auth", .file = smtpenv, .type = T::boolean,
       .default_value = "0",
       .doc = "1: relaying requires SMTP AUTH; 0: a local sender may also relay (see relay).",
       .example = "1", .setup_value = "1", .field = field<smtp, &S::send_permits_only_smtp_auth>},
      {.name = "multiprocessing", .file = smtpenv, .type = T::integer, .default_value = "20",
       .min = 1, .max = 10000,
       .doc = "Maximum concurrent inbound SMTP sessions from peers outside "
              "multiprocessing_exempt; the next one gets 421.",
       .example = "50", .field = field<smtp, &S::multiprocessing>},
      {.name = "multiprocessing_exempt", .file = smtpenv, .type = T::cidr_list,
       .default_value = "127.0.0.0/8,::1",
       .doc = "Client IPs or CIDR blocks (local applications) not counted by multiprocessing; "
              "none = count every client.",
       .example = "127.0.0.0/8,::1,192.0.2.5", .field = field<smtp, &S::multiprocessing_exempt>},
      {.name = "send_max_during_a_day", .file = smtpenv, .type = T::integer,
       .default_value = "-1", .min = INT_MIN, .max = INT_MAX,
       .doc = "Messages one account may relay per calendar day; negative = unlimited.",
       .example = "1000", .account_override = true,
       .field = field<smtp, &S::send_max_during_a_day>,
       .set_account = &set_account<&A::send_max_during_a_day>},
      {.name = "reject_domain", .file = smtpenv, .type = T::domain_list, .default_value = "",
       .doc = "Sender domains (or IP literals) whose mail is refused at MAIL FROM.",
       .example = "spam.example,192.0.2.66", .account_override = true,
       .field = field<smtp, &S::reject_domain>,
       .set_account = &set_account<&A::reject_domain>},
      {.name = "reject_mailaddress", .file = smtpenv, .type = T::address_list,
       .default_value = "",
       .doc = "Sender addresses whose mail is refused at MAIL FROM.",
       .example = "news@example.com,directmail@example.com", .synonyms = {"reject_mailaddres"},
       .account_override = true, .field = field<smtp, &S::reject_mailaddress>,
       .set_account = &set_account<&A::reject_mailaddress>},
      {.name = "max_mail_size", .file = smtpenv, .type = T::bytes, .default_value = "52428800",
       .min = 1024, .max = std::int64_t{1} << 40,
       .doc = "Largest message accepted, in bytes (advertised with SIZE).",
       .example = "10485760", .field = field<smtp, &S::max_mail_size>},
      {.name = "queue_minfree", .file = smtpenv, .type = T::bytes, .default_value = "0",
       .min = 0, .max = std::int64_t{1} << 50,
       .doc = "Bytes a file system must keep free to take mail (as Postfix's queue_minfree): "
              "below it, or below it plus a SIZE= declared at MAIL, MAIL and RCPT get "
              "452 4.3.1 Insufficient system storage before any data is sent. Checked on the "
              "mailbox folder's file system for local recipients and on the queue's "
              "(resendmail/) for remote ones. 0 = 1.5 × max_mail_size (Postfix's rule).",
       .example = "104857600", .field = field<smtp, &S::queue_minfree>},
      {.name = "max_recipients", .file = smtpenv, .type = T::integer, .default_value = "1000",
       .min = 1, .max = 100000, .doc = "Recipients allowed in one transaction.",
       .example = "100", .field = field<smtp, &S::max_recipients>},
      {.name = "auth_requires_tls", .file = smtpenv, .type = T::boolean, .default_value = "0",
       .doc = "1: AUTH is offered only after STARTTLS or on the TLS port (loopback exempt).",
       .example = "1", .field = field<smtp, &S::auth_requires_tls>},
      {.name = "smart_host", .file = smtpenv, .type = T::host_port, .default_value = "",
       .doc = "host[:port] that receives all outbound mail; empty = deliver by MX look-up.",
       .example = "relay.example.net:587", .field = field<smtp, &S::smart_host>},
      {.name = "dns_servers", .file = smtpenv, .type = T::ip_port_list, .default_value = "",
       .doc = "ip[:port] list used for MX look-ups; empty = the system resolver.",
       .example = "192.0.2.53,[2001:db8::53]:53", .field = field<smtp, &S::dns_servers>},
      {.name = "smtp_tls_security_level", .file = smtpenv, .type = T::choice, .default_value = "may",
       .doc = "TLS on outbound SMTP (as Postfix's smtp_tls_security_level): none = never STARTTLS; "
              "may = STARTTLS when offered, unverified, plain text when it fails; encrypt = STARTTLS "
              "required (not offered or failed: the mail waits, 4.7.4/4.7.5, never sent in clear); "
              "verify = encrypt plus the certificate chain checked against smtp_tls_ca_file and "
              "its name against the MX host name (the smart_host's name). Per destination: "
              "def/tls_policy.def.",
       .example = "encrypt", .choices = {"none", "may", "encrypt", "verify"},
       .field = field<smtp, &S::smtp_tls_security_level>},
      {.name = "smtp_tls_ca_file", .file = smtpenv, .type = T::path,
       .default_value = "/etc/ssl/certs/ca-certificates.crt",
       .doc = "PEM file of the certificate authorities outbound TLS trusts (the verify level, and "
              "the verified/untrusted note in the logs).",
       .example = "/etc/wizmail/ca.pem", .field = field<smtp, &S::smtp_tls_ca_file>},
      {.name = "outbound_port", .file = smtpenv, .type = T::integer, .default_value = "25",
       .min = 1, .max = 65535, .doc = "Port used to deliver outbound mail to MX hosts.",
       .example = "2526", .field = field<smtp, &S::outbound_port>},
      {.name = "outbound_max_connections", .file = smtpenv, .type = T::integer, .default_value = "20",
       .min = 1, .max = 1000,
       .doc = "Outbound SMTP sessions the queue runner keeps open at once (Postfix: "
              "default_process_limit for smtp).",
       .example = "50", .field = field<smtp, &S::outbound_max_connections>},
      {.name = "outbound_max_per_destination", .file = smtpenv, .type = T::integer, .default_value = "20",
       .min = 1, .max = 1000,
       .doc = "Of those, sessions to one destination: one recipient domain, or the smart_host (Postfix: "
              "default_destination_concurrency_limit). Lower it for a receiver that limits "
              "connections per client.",
       .example = "5", .field = field<smtp, &S::outbound_max_per_destination>},
      {.name = "session_timeout", .file = smtpenv, .type = T::integer, .default_value = "300",
       .min = 10, .max = 3600,
       .doc = "Seconds of client silence before the session is closed with 421.",
       .example = "120", .field = field<smtp, &S::session_timeout>},
      {.name = "junk_command_limit", .file = smtpenv, .type = T::integer,
       .default_value = "100", .min = 0, .max = 1000000,
       .doc = "NOOP, RSET, VRFY, HELP, HELO and EHLO commands a session may send (as "
              "Postfix's smtpd_junk_command_limit); the next one gets 421 4.7.0 and the "
              "session is closed. An accepted message resets the count. 0 = no limit.",
       .example = "50", .field = field<smtp, &S::junk_command_limit>},
      {.name = "greet_wait", .file = smtpenv, .type = T::integer, .default_value = "1000",
       .min = 0, .max = 8000,
       .doc = "Milliseconds the port-25 listener waits before its 220 greeting (postscreen's "
              "pregreet test): a client that talks meanwhile gets 554 5.5.1 and is "
              "disconnected. Clients in greet_wait_exempt or address_permits_relay, and "
              "clients that passed within greet_pass_ttl, are greeted at once; submission "
              "ports never wait. 0 = off.",
       .example = "3000", .field = field<smtp, &S::greet_wait>},
      {.name = "greet_wait_exempt", .file = smtpenv, .type = T::cidr_list,
       .default_value = "127.0.0.0/8,::1",
       .doc = "Client IPs or CIDR blocks greeted without the greet_wait (besides "
              "address_permits_relay); none = every client waits.",
       .example = "127.0.0.0/8,::1,192.0.2.0/24", .field = field<smtp, &S::greet_wait_exempt>},
      {.name = "greet_pass_ttl", .file = smtpenv, .type = T::integer, .default_value = "86400",
       .min = 0, .max = 2592000,
       .doc = "Seconds a client address that waited for the greeting is greeted at once "
              "(postscreen_greet_ttl); at most 65,536 addresses are remembered. 0 = every "
              "connection waits.",
       .example = "3600", .field = field<smtp, &S::greet_pass_ttl>},
      {.name = "client_connection_limit", .file = smtpenv, .type = T::integer,
       .default_value = "-1", .min = -1, .max = 10000,
       .doc = "Concurrent SMTP and POP3 connections one client may hold (its IPv4 address, or "
              "its IPv6 /64), as Postfix's smtpd_client_connection_count_limit; the next one gets "
              "421 4.7.0 (POP3: -ERR [SYS/TEMP]) and takes no multiprocessing slot. Clients in "
              "multiprocessing_exempt are not counted. -1 = half of multiprocessing (at least 1); "
              "0 = no limit.",
       .example = "5", .field = field<smtp, &S::client_connection_limit>},
      {.name = "command_deadline", .file = smtpenv, .type = T::integer, .default_value = "120",
       .min = 1, .max = 3600,
       .doc = "Seconds a client may take to send one command line, however it trickles the bytes "
              "(SMTP and POP3; SASL responses too); then 421 4.4.2 (POP3: -ERR) and close. "
              "Also the grace period of data_min_rate.",
       .example = "60", .field = field<smtp, &S::command_deadline>},
      {.name = "data_min_rate", .file = smtpenv, .type = T::integer, .default_value = "500",
       .min = 0, .max = 1000000000,
       .doc = "Bytes per second a client must average while sending DATA, after a grace period of "
              "command_deadline (Postfix's smtpd_min_data_rate): the message must be complete "
              "within command_deadline + received bytes / data_min_rate seconds of the 354, else "
              "421 4.4.2 and close. 0 = no deadline for DATA (session_timeout only).",
       .example = "1000", .field = field<smtp, &S::data_min_rate>},
      {.name = "auth_penalty_delay", .file = smtpenv, .type = T::integer, .default_value = "1000",
       .min = 0, .max = 60000,
       .doc = "Milliseconds every SMTP AUTH and POP3 USER/PASS or APOP attempt waits, before it is "
              "checked, when the client's network (IPv4 address, IPv6 /64) failed to log in within "
              "the last hour; doubled per failure up to auth_penalty_max_delay (Dovecot's "
              "auth_penalty). A right password waits as long as a wrong one. 0 = no wait.",
       .example = "2000", .field = field<smtp, &S::auth_penalty_delay>},
      {.name = "auth_penalty_max_delay", .file = smtpenv, .type = T::integer,
       .default_value = "16000", .min = 0, .max = 600000,
       .doc = "Milliseconds: the longest auth_penalty_delay grows to.",
       .example = "30000", .field = field<smtp, &S::auth_penalty_max_delay>},
      {.name = "auth_concurrency_limit", .file = smtpenv, .type = T::integer,
       .default_value = "2", .min = 0, .max = 10000,
       .doc = "Login attempts (SMTP AUTH, POP3 PASS/APOP) one client network may have in progress "
              "at a time, waiting or being checked; another is refused with 454 4.7.0 (POP3: -ERR "
              "[SYS/TEMP]) without being checked. 0 = no cap.",
       .example = "1", .field = field<smtp, &S::auth_concurrency_limit>},
      {.name = "auth_block_failures", .file = smtpenv, .type = T::integer,
       .default_value = "20", .min = 0, .max = 1000000,
       .doc = "Failed logins of one client network within an hour after which its logins are "
              "refused outright for auth_block_time: SMTP AUTH gets 421 4.7.0 and the connection "
              "closes, POP3 USER/PASS/APOP -ERR [SYS/TEMP]; a right password is not checked "
              "either. 0 = never block.",
       .example = "10", .field = field<smtp, &S::auth_block_failures>},
      {.name = "auth_block_time", .file = smtpenv, .type = T::integer, .default_value = "900",
       .min = 1, .max = 86400,
       .doc = "Seconds a network stays blocked after its auth_block_failures-th failure (each "
              "further failure after the block starts it again).",
       .example = "3600", .field = field<smtp, &S::auth_block_time>},
      // Sender Rewriting Scheme for forwarded mail (libwizmail/src/srs/srs.hpp).
      {.name = "srs", .file = smtpenv, .type = T::boolean, .default_value = "0",
       .doc = "1: mail forwarded to a remote address (an alias target, a forward.def hook or "
              "anything handed in on the local submit socket) whose envelope sender is not at a "
              "local domain leaves with an SRS sender at srs_domain (SRS0=HHHH=TT=domain=user@"
              "srs_domain, SRS1 for an SRS address of another forwarder), so the sender's SPF "
              "still passes; RCPT to such an address is accepted only with a valid hash and time "
              "stamp and is relayed to the original sender (bounces). The secret is def/srs.secret "
              "(mode 0600; made on first use). 0: senders are kept, SRS addresses are not reversed.",
       .example = "1", .field = field<smtp, &S::srs>},
      {.name = "srs_domain", .file = smtpenv, .type = T::hostname, .default_value = "",
       .doc = "Domain of the SRS addresses (its MX must point here); empty = domain "
              "(wiz98msenv.dat).",
       .example = "srs.example.com", .field = field<smtp, &S::srs_domain>},
      {.name = "srs_max_age", .file = smtpenv, .type = T::integer, .default_value = "21",
       .min = 1, .max = 1000,
       .doc = "Days an SRS address stays valid: a bounce to an older one (or to one stamped in "
              "the future) gets 550 5.1.1.",
       .example = "30", .field = field<smtp, &S::srs_max_age>},
      // Authentication of inbound mail (docs/authentication.md).
      {.name = "spf_check", .file = smtpenv, .type = T::boolean, .default_value = "1",
       .doc = "1: mail arriving on port 25 from an unauthenticated client outside mail_auth_exempt "
              "and address_permits_relay has the SPF record of its MAIL FROM domain (RFC 7208; the "
              "null sender: its HELO name) and of its HELO name checked at MAIL, through "
              "dns_servers; the results go into the message's Authentication-Results: field and "
              "into DMARC. 0: no SPF check (DMARC then sees SPF none).",
       .example = "0", .field = field<smtp, &S::spf_check>},
      {.name = "spf_reject_fail", .file = smtpenv, .type = T::boolean, .default_value = "0",
       .doc = "1: an SPF fail (-all matched) of the MAIL FROM domain is refused at MAIL with "
              "550 5.7.23. 0: it is only recorded (DMARC may still refuse the message). softfail, "
              "neutral, none and errors are never refused.",
       .example = "1", .field = field<smtp, &S::spf_reject_fail>},
      {.name = "dkim_verify", .file = smtpenv, .type = T::boolean, .default_value = "1",
       .doc = "1: the DKIM signatures of mail checked as for spf_check are verified at end of data "
              "(keys from DNS through dns_servers) and reported in Authentication-Results:.",
       .example = "0", .field = field<smtp, &S::dkim_verify>},
      {.name = "dmarc_check", .file = smtpenv, .type = T::boolean, .default_value = "1",
       .doc = "1: the From: domain's DMARC policy (RFC 7489; _dmarc TXT record of the domain or of "
              "its organisational domain) is evaluated at end of data against the SPF and DKIM "
              "results with identifier alignment, and reported in Authentication-Results:.",
       .example = "0", .field = field<smtp, &S::dmarc_check>},
      {.name = "dmarc_reject", .file = smtpenv, .type = T::boolean, .default_value = "1",
       .doc = "1: a message failing DMARC whose domain publishes p=reject (sp=reject for a "
              "subdomain) is refused at end of data with 550 5.7.1 (unless its From: domain is in "
              "dmarc_reject_exempt). p=quarantine and p=none failures are delivered, marked "
              "dmarc=fail in Authentication-Results:. 0: nothing is refused.",
       .example = "0", .field = field<smtp, &S::dmarc_reject>},
      {.name = "dmarc_reject_exempt", .file = smtpenv, .type = T::domain_list, .default_value = "",
       .doc = "From: domains (and their subdomains) whose DMARC p=reject failures are delivered "
              "instead of refused, e.g. mailing lists that break signatures.",
       .example = "lists.example.org,example.net", .field = field<smtp, &S::dmarc_reject_exempt>},
      {.name = "mail_auth_temperror_defer", .file = smtpenv, .type = T::boolean,
       .default_value = "0",
       .doc = "1: where a refusal is configured (spf_reject_fail, dmarc_reject) and the check "
              "ended in a temporary DNS error, the MAIL or the message gets 451 (4.7.24 SPF, 4.7.5 "
              "DMARC) so the client retries. 0: it is accepted, marked temperror. A temporary "
              "error is never refused with 5xx.",
       .example = "1", .field = field<smtp, &S::mail_auth_temperror_defer>},
      {.name = "authserv_id", .file = smtpenv, .type = T::hostname, .default_value = "",
       .doc = "The authserv-id of the Authentication-Results: field wizmail adds (RFC 8601); "
              "incoming Authentication-Results: fields claiming it are removed from checked mail. "
              "Empty = the server's host name.",
       .example = "mx.example.com", .field = field<smtp, &S::authserv_id>},
      {.name = "mail_auth_exempt", .file = smtpenv, .type = T::cidr_list,
       .default_value = "127.0.0.0/8,::1",
       .doc = "Client IPs or CIDR blocks whose mail is not checked with SPF, DKIM and DMARC "
              "(besides address_permits_relay, authenticated sessions, the submission ports and "
              "the local submit socket); none = every port-25 client is checked.",
       .example = "127.0.0.0/8,::1,192.0.2.0/24", .field = field<smtp, &S::mail_auth_exempt>},
      // Milters (libwizmail/src/milter/, docs/milter.md).
      {.name = "smtpd_milters", .file = smtpenv, .type = T::text_list, .default_value = "",
       .doc = "Milters (Sendmail milter protocol 6, Postfix semantics) that see every SMTP session "
              "and its mail, in order, each seeing the changes of the ones before: inet:host:port "
              "or unix:/path, comma-separated. Empty = none.",
       .example = "inet:127.0.0.1:11332,unix:/run/opendkim/opendkim.sock",
       .field = field<smtp, &S::smtpd_milters>},
      {.name = "non_smtpd_milters", .file = smtpenv, .type = T::text_list, .default_value = "",
       .doc = "Milters for mail handed in on the local submit socket (wizmail-sendmail, "
              "forward.def hooks), as smtpd_milters. Empty = none.",
       .example = "inet:127.0.0.1:8891", .field = field<smtp, &S::non_smtpd_milters>},
      {.name = "milter_default_action", .file = smtpenv, .type = T::text, .default_value = "tempfail",
       .doc = "What a milter that cannot be reached, times out or breaks the protocol answers for the "
              "rest of the session: tempfail (451 4.7.1), reject (550 5.7.1) or accept (as if it "
              "were not configured).",
       .example = "accept", .field = field<smtp, &S::milter_default_action>},
      {.name = "milter_connect_timeout", .file = smtpenv, .type = T::integer, .default_value = "30",
       .min = 1, .max = 3600,
       .doc = "Seconds to connect to a milter and negotiate with it.",
       .example = "10", .field = field<smtp, &S::milter_connect_timeout>},
      {.name = "milter_command_timeout", .file = smtpenv, .type = T::integer, .default_value = "30",
       .min = 1, .max = 3600,
       .doc = "Seconds a milter may take to answer connect, HELO, MAIL, RCPT and DATA (its "
              "progress notes restart the wait).",
       .example = "10", .field = field<smtp, &S::milter_command_timeout>},
      {.name = "milter_content_timeout", .file = smtpenv, .type = T::integer, .default_value = "300",
       .min = 1, .max = 3600,
       .doc = "Seconds a milter may take to answer a header, a body chunk or the end of the "
              "message (its progress notes restart the wait).",
       .example = "120", .field = field<smtp, &S::milter_content_timeout>},
      // DNS block and allow lists (libwizmail/src/dnsbl/, docs/dnsbl.md).
      {.name = "dnsbl_sites", .file = smtpenv, .type = T::text_list, .default_value = "",
       .doc = "DNS block lists (positive weight) and allow lists (negative weight) asked for the "
              "address of every port-25 client outside dnsbl_exempt when it connects, all at once "
              "through dns_servers, in Postfix postscreen's syntax zone[=filter][*weight] "
              "(separated by commas or blanks; filter: an IPv4 pattern of the answer, each octet "
              "a number, [a..b] or [a;b;c]; weight default 1). The weights of the listing sites "
              "add up; a score of dnsbl_threshold or more refuses the client as dnsbl_action says "
              "(enforce: every RCPT gets 554 5.7.1 Service unavailable; client [IP] blocked using "
              "ZONE). Empty = no look-ups.",
       .example = "zen.spamhaus.org*2,list.dnswl.org=127.0.[0..255].[1..3]*-2",
       .split_blanks = true, .check_item = &check_dnsbl_site,
       .field = field<smtp, &S::dnsbl_sites>},
      {.name = "dnsbl_threshold", .file = smtpenv, .type = T::integer, .default_value = "1",
       .min = 1, .max = 100000,
       .doc = "The score (sum of the weights of the dnsbl_sites listing the client) at which it "
              "is refused.",
       .example = "2", .field = field<smtp, &S::dnsbl_threshold>},
      {.name = "dnsbl_action", .file = smtpenv, .type = T::choice, .default_value = "enforce",
       .doc = "What a client scoring dnsbl_threshold gets (as postscreen_dnsbl_action): enforce = "
              "the session goes on, every RCPT is refused with 554 5.7.1 naming the list (unless "
              "the client authenticates), the envelope is logged; drop = the greeting waits for "
              "the answers and is 521 5.7.1 naming the list, then the connection closes; ignore = "
              "logged only (to try a list out).",
       .example = "drop", .choices = {"enforce", "drop", "ignore"},
       .field = field<smtp, &S::dnsbl_action>},
      {.name = "dnsbl_exempt", .file = smtpenv, .type = T::cidr_list,
       .default_value = "127.0.0.0/8,::1",
       .doc = "Client IPs or CIDR blocks never looked up in dnsbl_sites (besides "
              "address_permits_relay, authenticated sessions, the submission ports and the local "
              "submit socket); none = every port-25 client is looked up.",
       .example = "127.0.0.0/8,::1,192.0.2.0/24", .field = field<smtp, &S::dnsbl_exempt>},

      // ---- def/popenv.dat ----
      {.name = "host", .file = popenv, .type = T::hostname, .default_value = "localhost",
       .doc = "POP3 host name, used in the APOP banner.", .example = "pop.example.org",
       .field = field<pop, &P::host>},
      {.name = "port", .file = popenv, .type = T::integer, .default_value = "110", .min = 1,
       .max = 65535, .doc = "POP3 listener port.", .example = "1110",
       .field = field<pop, &P::port>},
      {.name = "pop3s_port", .file = popenv, .type = T::integer, .default_value = "0",
       .min = 0, .max = 65535,
       .doc = "Implicit-TLS POP3 port (e.g. 995); needs tls_cert_file/tls_key_file; 0 = off.",
       .example = "995", .field = field<pop, &P::pop3s_port>},
      {.name = "uidl_interval", .file = popenv, .type = T::integer, .default_value = "0",
       .min = 0, .max = 10000, .doc = "Milliseconds to wait between UIDL response lines.",
       .example = "100", .field = field<pop, &P::uidl_interval>},
      {.name = "dustbox", .file = popenv, .type = T::boolean, .default_value = "FALSE",
       .doc = "TRUE: mail deleted with DELE is moved to the dustbox (TRUE/FALSE or 1/0).",
       .example = "TRUE", .bool_words = true, .field = field<pop, &P::dustbox>},

      // ---- def/wiz98msenv.dat ----
      {.name = "domain", .file = wizenv, .type = T::hostname, .default_value = "localhost",
       .doc = "The primary mail domain (used for bounces and notices).",
       .example = "example.org", .field = field<srv, &W::domain>},
      {.name = "alias", .file = wizenv, .type = T::domain_list, .default_value = "",
       .doc = "Further mail domains (or IP literals) sharing the one account namespace.",
       .example = "example.com,192.0.2.1", .field = field<srv, &W::alias>},
      {.name = "log_size_max", .file = wizenv, .type = T::bytes, .default_value = "5242880",
       .min = 4096, .max = std::int64_t{1} << 40,
       .doc = "Bytes; a log file growing over this is rotated to <name>.1.",
       .example = "10485760", .field = field<srv, &W::log_size_max>},
      {.name = "mailing_list_from_kind", .file = wizenv, .type = T::integer,
       .default_value = "0", .min = 0, .max = 2,
       .doc = "0: From = poster, Reply-To = list; 1: From = list; 2: From = poster, "
              "Reply-To = poster.",
       .example = "2", .account_override = true,
       .field = field<srv, &W::mailing_list_from_kind>,
       .set_account = &set_account<&A::mailing_list_from_kind>},
      {.name = "mailing_list_to_kind", .file = wizenv, .type = T::integer,
       .default_value = "0", .min = 0, .max = 1,
       .doc = "0: To = each member; 1: To = the list address.", .example = "1",
       .account_override = true, .field = field<srv, &W::mailing_list_to_kind>,
       .set_account = &set_account<&A::mailing_list_to_kind>},
      {.name = "mailing_list_mail_header_x_element", .file = wizenv, .type = T::integer,
       .default_value = "0", .min = 0, .max = 1,
       .doc = "0: remove X- headers from list mail; 1: keep them.", .example = "1",
       .account_override = true, .field = field<srv, &W::mailing_list_mail_header_x_element>,
       .set_account = &set_account<&A::mailing_list_mail_header_x_element>},
      {.name = "mailing_list_public_level", .file = wizenv, .type = T::integer,
       .default_value = "1", .min = -1, .max = 1,
       .doc = "1: anyone may post; 0: members only; -1: only the list's own address.",
       .example = "0", .account_override = true,
       .field = field<srv, &W::mailing_list_public_level>,
       .set_account = &set_account<&A::mailing_list_public_level>},
      {.name = "mailing_list_subject_header", .file = wizenv, .type = T::integer,
       .default_value = "1", .min = 0, .max = 2,
       .doc = "0: no subject prefix; 1: add [name NNNN]; 2: also strip older prefixes on replies.",
       .example = "2", .account_override = true,
       .field = field<srv, &W::mailing_list_subject_header>,
       .set_account = &set_account<&A::mailing_list_subject_header>},
      {.name = "mailing_list_filter_string", .file = wizenv, .type = T::text_list,
       .default_value = "",
       .doc = "List mail whose subject contains any of these strings is not distributed.",
       .example = "Delivery,Status,Failure,Error,未承諾広告", .account_override = true,
       .field = field<srv, &W::mailing_list_filter_string>,
       .set_account = &set_account<&A::mailing_list_filter_string>},
      {.name = "mailbox_capacity_mail_count", .file = wizenv, .type = T::integer,
       .default_value = "-1", .min = std::numeric_limits<std::int64_t>::min(),
       .max = kInt64Max, .doc = "Maximum messages per account; negative = unlimited.",
       .example = "1000", .account_override = true,
       .field = field<srv, &W::mailbox_capacity_mail_count>,
       .set_account = &set_account<&A::mailbox_capacity_mail_count>},
      {.name = "mailbox_capacity_mail_size", .file = wizenv, .type = T::bytes,
       .default_value = "-1", .min = std::numeric_limits<std::int64_t>::min(),
       .max = kInt64Max, .doc = "Maximum bytes per account; negative = unlimited.",
       .example = "5242880", .account_override = true,
       .field = field<srv, &W::mailbox_capacity_mail_size>,
       .set_account = &set_account<&A::mailbox_capacity_mail_size>},
      {.name = "application_cooperation_wait_for_apl_end", .file = wizenv,
       .type = T::boolean, .default_value = "0",
       .doc = "1: wait for hook programs (exec.def ...) to exit before going on.",
       .example = "1", .account_override = true,
       .field = field<srv, &W::application_cooperation_wait_for_apl_end>,
       .set_account = &set_account<&A::application_cooperation_wait_for_apl_end>},
      {.name = "application_cooperation_timeout", .file = wizenv, .type = T::integer,
       .default_value = "60", .min = 1, .max = 3600,
       .doc = "Seconds a waited-for hook program may run before it is killed.",
       .example = "30", .field = field<srv, &W::application_cooperation_timeout>},
      {.name = "mailbox_path", .file = wizenv, .type = T::path, .default_value = "",
       .doc = "Absolute path of the mailbox folder; empty = <home>/mailbox.",
       .example = "/srv/mail/mailbox", .field = field<srv, &W::mailbox_path>},
      {.name = "dustbox_path", .file = wizenv, .type = T::path, .default_value = "",
       .doc = "Absolute path of the dustbox folder; empty = <home>/dustbox.",
       .example = "/srv/mail/dustbox", .field = field<srv, &W::dustbox_path>},
      {.name = "time_out_of_stop", .file = wizenv, .type = T::integer, .default_value = "60",
       .min = 0, .max = 3600,
       .doc = "Seconds a normal stop waits for running sessions before closing them.",
       .example = "10", .field = field<srv, &W::time_out_of_stop>},
      {.name = "tls_cert_file", .file = wizenv, .type = T::path, .default_value = "",
       .doc = "PEM certificate chain (absolute path); with tls_key_file enables "
              "STARTTLS/STLS and the TLS ports.",
       .example = "/etc/ssl/certs/mail.pem", .field = field<srv, &W::tls_cert_file>},
      {.name = "tls_key_file", .file = wizenv, .type = T::path, .default_value = "",
       .doc = "PEM private key (absolute path) matching tls_cert_file.",
       .example = "/etc/ssl/private/mail.key", .field = field<srv, &W::tls_key_file>},
      {.name = "dustbox_keep_days", .file = wizenv, .type = T::integer, .default_value = "7",
       .min = 0, .max = 3650,
       .doc = "Days deleted mail stays in the dustbox before maintenance purges it "
              "(0 = purge at every maintenance).",
       .example = "30", .field = field<srv, &W::dustbox_keep_days>},
      {.name = "run_as_user", .file = wizenv, .type = T::user, .default_value = "",
       .doc = "User the server switches to after binding its ports when started as root; "
              "empty = keep the starting user.",
       .example = "wizmail", .field = field<srv, &W::run_as_user>},
      {.name = "metrics_port", .file = wizenv, .type = T::integer, .default_value = "0",
       .min = 0, .max = 65535,
       .doc = "Port of the plain-text metrics endpoint (loopback only); 0 = off.",
       .example = "9187", .field = field<srv, &W::metrics_port>},
      {.name = "proxy_trusted_networks", .file = wizenv, .type = T::cidr_list, .default_value = "",
       .doc = "Load balancers (IPs or CIDR blocks) whose connections to every SMTP and POP3 port "
              "must start with a PROXY protocol v1 or v2 header (HAProxy send-proxy, send-proxy-v2) "
              "naming the client, within 5 s; the client it names is the client for every rule, "
              "limit and log. A peer in the list without a header, and a header from a peer not "
              "in it, are refused (docs/proxy-protocol.md). Empty = off.",
       .example = "10.0.0.10,10.0.0.11", .field = field<srv, &W::proxy_trusted_networks>},
      {.name = "redis_url", .file = wizenv, .type = T::text, .default_value = "",
       .doc = "Redis server that the nodes of a cluster share their volatile state through "
              "(docs/cluster.md): redis://[[user]:password@]host[:port][/db] or "
              "unix://[:password@]/path.sock[?db=N]. Now: POP3 mailbox leases across nodes. "
              "Empty = in-process (one node, nothing else needed). Read at start.",
       .example = "redis://10.0.0.5:6379/0", .field = field<srv, &W::redis_url>},
      {.name = "redis_lease_seconds", .file = wizenv, .type = T::integer, .default_value = "60",
       .min = 2, .max = 3600,
       .doc = "Seconds a node's Redis lease (a POP3 mailbox lock) outlives the node's last "
              "renewal: the longest a crashed node keeps a mailbox locked. Renewed every third "
              "of it while the session lives.",
       .example = "30", .field = field<srv, &W::redis_lease_seconds>},
      {.name = "cluster_heartbeat_seconds", .file = wizenv, .type = T::integer, .default_value = "5",
       .min = 1, .max = 300,
       .doc = "Seconds between the heartbeats a node started with --node writes to "
              "nodes/<node>/heartbeat (and Redis with redis_url); `wizmail cluster status` calls a "
              "node stale after three missed beats (docs/cluster.md). Read at start.",
       .example = "2", .field = field<srv, &W::cluster_heartbeat_seconds>},
      {.name = "cluster_takeover_seconds", .file = wizenv, .type = T::integer, .default_value = "60",
       .min = 4, .max = 86400,
       .doc = "Seconds a node's heartbeat may be old before a live node takes over its claimed "
              "queue and agent spool entries and delivers them (docs/cluster.md); a node whose own "
              "heartbeat could not be written for half of it claims nothing and ends no delivery. "
              "Must be more than 3 × cluster_heartbeat_seconds; the same on every node. Read at start.",
       .example = "30", .field = field<srv, &W::cluster_takeover_seconds>},
      {.name = "admin_port", .file = wizenv, .type = T::integer, .default_value = "0",
       .min = 0, .max = 65535,
       .doc = "Port of the web console and its JSON API (docs/console.md); 0 = off. "
              "Prometheus scrapes metrics_port, not this one.",
       .example = "8443", .field = field<srv, &W::admin_port>},
      {.name = "admin_bind_address", .file = wizenv, .type = T::ip_list,
       .default_value = "127.0.0.1",
       .doc = "The one address the web console listens on (loopback by default: "
              "reach it through an SSH tunnel or a reverse proxy).",
       .example = "::1", .field = field<srv, &W::admin_bind_address>},
      {.name = "admin_tls", .file = wizenv, .type = T::boolean, .default_value = "1",
       .doc = "Serve the web console over HTTPS with tls_cert_file/tls_key_file when "
              "they are set (session cookies then carry Secure); 0 = plain HTTP always.",
       .example = "0", .field = field<srv, &W::admin_tls>},
      {.name = "admin_accounts", .file = wizenv, .type = T::text_list, .default_value = "",
       .doc = "Accounts that administer through the web console (list, create and "
              "delete accounts, set any password); every other account sees only its own.",
       .example = "postmaster", .field = field<srv, &W::admin_accounts>},
  };
}

constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
constexpr bool is_alnum(char c) noexcept {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += ',';
    out += s;
  }
  return out;
}

// Build the result in place: moving a Value into an expected trips a GCC 12
// -Wmaybe-uninitialized false positive under -fsanitize.
template <class T>
Result<Value> ok(T v) {
  return Result<Value>(std::in_place, std::in_place_type<T>, std::move(v));
}

Result<std::int64_t> parse_number(const Key& key, std::string_view text) {
  std::int64_t mult = 1;
  std::string_view digits = text;
  if (key.type == Type::bytes && !digits.empty()) {
    char last = digits.back();
    if (last == 'k' || last == 'K') mult = 1024;
    else if (last == 'm' || last == 'M') mult = 1024 * 1024;
    else if (last == 'g' || last == 'G') mult = 1024 * 1024 * 1024;
    if (mult != 1) digits.remove_suffix(1);
  }
  auto n = util::parse_int(digits);
  if (!n) {
    return fail(Errc::parse, util::cat("'", text, "' is not a whole number",
                                 (key.type == Type::bytes ? " (K, M, G suffixes allowed)" : "")));
  }
  if (mult != 1 && (*n > kInt64Max / mult || *n < -kInt64Max / mult))
    return fail(Errc::parse, util::cat("'", text, "' is too large"));
  std::int64_t v = *n * mult;
  if (v < key.min || v > key.max)
    return fail(Errc::parse, std::string(text) + " is out of range (allowed: " +
                                 allowed_text(key) + ")");
  return v;
}

bool valid_port_text(std::string_view s) noexcept {
  auto p = util::parse_int(s);
  return p && *p >= 1 && *p <= 65535;
}

// host[:port] or [v6][:port] or a bare IPv6. `host_ok` validates the host.
bool valid_host_port(std::string_view s, bool ip_only) {
  std::string_view host = s;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos) return false;
    host = s.substr(1, close - 1);
    std::string_view rest = s.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || !valid_port_text(rest.substr(1)))) return false;
    std::string h(host);
    in6_addr a6{};
    return ::inet_pton(AF_INET6, h.c_str(), &a6) == 1;
  }
  if (std::count(s.begin(), s.end(), ':') > 1) return valid_ip(s);  // bare IPv6
  if (auto colon = s.find(':'); colon != std::string_view::npos) {
    if (!valid_port_text(s.substr(colon + 1))) return false;
    host = s.substr(0, colon);
  }
  return ip_only ? valid_ip(host) : valid_hostname(host);
}

bool valid_address(std::string_view s) {
  auto at = s.rfind('@');
  if (at == std::string_view::npos || at == 0) return false;
  for (char c : s.substr(0, at)) {
    if (c == ' ' || c == '\t' || c == '<' || c == '>' || c == ',' || c == ';') return false;
  }
  std::string_view dom = s.substr(at + 1);
  if (dom.size() > 2 && dom.front() == '[' && dom.back() == ']')
    return valid_ip(dom.substr(1, dom.size() - 2));
  return valid_hostname(dom);
}

bool valid_user(std::string_view s) noexcept {
  if (s.empty() || s.size() > 32) return false;
  if (!((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_')) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || c == '-' || c == '.'))
      return false;
  return true;
}

}  // namespace

std::string_view file_name(DefFile f) noexcept {
  switch (f) {
    case DefFile::smtpenv: return "smtpenv.dat";
    case DefFile::popenv: return "popenv.dat";
    case DefFile::wiz98msenv: return "wiz98msenv.dat";
  }
  return "";
}

bool file_from_name(std::string_view name, DefFile& out) noexcept {
  if (name.starts_with("def/")) name.remove_prefix(4);
  for (DefFile f : all_files) {
    if (name == file_name(f)) {
      out = f;
      return true;
    }
  }
  return false;
}

std::string_view type_name(Type t) noexcept {
  switch (t) {
    case Type::integer: return "integer";
    case Type::bytes: return "bytes";
    case Type::boolean: return "boolean";
    case Type::text: return "text";
    case Type::hostname: return "host name";
    case Type::path: return "path";
    case Type::user: return "user name";
    case Type::text_list: return "text list";
    case Type::domain_list: return "domain list";
    case Type::address_list: return "address list";
    case Type::ip_list: return "IP list";
    case Type::cidr_list: return "IP/CIDR list";
    case Type::host_port: return "host[:port]";
    case Type::ip_port_list: return "ip[:port] list";
    case Type::choice: return "choice";
  }
  return "";
}

const std::vector<Key>& keys() {
  static const std::vector<Key> table = make_keys();
  return table;
}

const Key* find_key(DefFile file, std::string_view name) noexcept {
  for (const Key& k : keys()) {
    if (k.file != file) continue;
    if (util::iequals(k.name, name)) return &k;
    for (auto syn : k.synonyms)
      if (util::iequals(syn, name)) return &k;
  }
  return nullptr;
}

std::vector<std::string_view> names_of(const Key& k) {
  std::vector<std::string_view> names{k.name};
  names.insert(names.end(), k.synonyms.begin(), k.synonyms.end());
  return names;
}

const Key* find_key_any(std::string_view name) noexcept {
  for (DefFile f : all_files)
    if (const Key* k = find_key(f, name)) return k;
  return nullptr;
}

bool valid_ip(std::string_view s) noexcept {
  if (s.empty() || s.size() > 45) return false;
  char buf[64] = {};
  s.copy(buf, s.size());
  in_addr a4{};
  in6_addr a6{};
  return ::inet_pton(AF_INET, buf, &a4) == 1 || ::inet_pton(AF_INET6, buf, &a6) == 1;
}

bool valid_cidr(std::string_view s) noexcept { return util::CidrBlock::parse(s).has_value(); }

bool valid_hostname(std::string_view s) noexcept {
  if (s.size() > 2 && s.front() == '[' && s.back() == ']') return valid_ip(s.substr(1, s.size() - 2));
  if (valid_ip(s)) return true;
  if (s.empty() || s.size() > 253) return false;
  std::size_t label = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '.') {
      if (label == 0 || s[i - 1] == '-') return false;
      label = 0;
      continue;
    }
    if (!(is_alnum(c) || c == '-' || c == '_')) return false;
    if (c == '-' && label == 0) return false;
    if (++label > 63) return false;
  }
  return label > 0 && s.back() != '-';
}

namespace {
// "none, may, encrypt or verify"
std::string join_choices(const Key& key) {
  std::string out;
  for (std::size_t i = 0; i < key.choices.size(); ++i) {
    if (i) out += i + 1 == key.choices.size() ? " or " : ", ";
    out += key.choices[i];
  }
  return out;
}
}  // namespace

std::string allowed_text(const Key& key) {
  switch (key.type) {
    case Type::integer:
    case Type::bytes: {
      bool no_min = key.min <= INT_MIN;
      bool no_max = key.max >= INT_MAX;
      if (no_min && no_max) return "any whole number";
      if (no_max) return std::to_string(key.min) + " or more";
      return std::to_string(key.min) + "–" + std::to_string(key.max);
    }
    case Type::boolean: return key.bool_words ? "TRUE or FALSE (or 1/0)" : "0 or 1 (or TRUE/FALSE)";
    case Type::text: return "text";
    case Type::hostname: return "a domain name or IP address";
    case Type::path: return "an absolute path";
    case Type::user: return "a user name";
    case Type::text_list: return "comma-separated strings";
    case Type::domain_list: return "comma-separated domain names or IP addresses";
    case Type::address_list: return "comma-separated mail addresses";
    case Type::ip_list: return "comma-separated IPv4/IPv6 addresses";
    case Type::cidr_list: return "comma-separated IP addresses or CIDR blocks";
    case Type::host_port: return "host[:port] ([IPv6]:port)";
    case Type::ip_port_list: return "comma-separated ip[:port] ([IPv6]:port)";
    case Type::choice: return "one of " + join_choices(key);
  }
  return "";
}

Result<Value> parse_value(const Key& key, std::string_view text) {
  const std::string t(text);
  auto bad = [&](std::string_view what) {
    return fail(Errc::parse, "'" + t + "' is not " + std::string(what));
  };
  switch (key.type) {
    case Type::integer:
    case Type::bytes: {
      auto n = parse_number(key, text);
      if (!n) return unexpected(n.error());
      return ok<std::int64_t>(*n);
    }
    case Type::boolean:
      if (text == "1" || util::iequals(text, "true")) return ok(true);
      if (text == "0" || util::iequals(text, "false")) return ok(false);
      return bad(key.bool_words ? "TRUE or FALSE" : "0 or 1");
    case Type::text: return ok(t);
    case Type::hostname:
      if (!valid_hostname(text)) return bad("a domain name or IP address (use xn-- for international names)");
      return ok(t);
    case Type::path:
      if (text.front() != '/') return bad("an absolute path");
      return ok(t);
    case Type::user:
      if (!valid_user(text)) return bad("a valid user name");
      return ok(t);
    case Type::host_port:
      if (!valid_host_port(text, false)) return bad("host[:port] with a port 1–65535");
      return ok(t);
    case Type::choice:
      for (auto c : key.choices)
        if (util::iequals(text, c)) return ok(std::string(c));
      return bad("one of " + join_choices(key));
    case Type::text_list:
    case Type::domain_list:
    case Type::address_list:
    case Type::ip_list:
    case Type::cidr_list:
    case Type::ip_port_list: {
      // A list whose default is not empty needs a spelling for "nothing",
      // since an empty value means the default.
      if (!key.default_value.empty() && util::iequals(text, "none"))
        return ok(std::vector<std::string>{});
      auto items = key.split_blanks ? split_commas_blanks(text) : util::split_list(text);
      for (const auto& item : items) {
        if (key.check_item) {
          if (auto why = key.check_item(item); !why.empty()) return fail(Errc::parse, why);
          continue;
        }
        bool ok = true;
        std::string_view what;
        switch (key.type) {
          case Type::domain_list: ok = valid_hostname(item); what = "a domain name or IP address"; break;
          case Type::address_list: ok = valid_address(item); what = "a mail address"; break;
          case Type::ip_list: ok = valid_ip(item); what = "an IP address"; break;
          case Type::cidr_list: ok = valid_cidr(item); what = "an IP address or CIDR block"; break;
          case Type::ip_port_list: ok = valid_host_port(item, true); what = "ip[:port]"; break;
          default: break;
        }
        if (!ok) return fail(Errc::parse, "'" + item + "' is not " + std::string(what));
      }
      return ok(std::move(items));
    }
  }
  return fail(Errc::internal, "unknown key type");
}

std::string format_value(const Key& key, const Value& v) {
  if (const auto* n = std::get_if<std::int64_t>(&v)) return std::to_string(*n);
  if (const auto* b = std::get_if<bool>(&v)) {
    if (key.bool_words) return *b ? "TRUE" : "FALSE";
    return *b ? "1" : "0";
  }
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  const auto& list = std::get<std::vector<std::string>>(v);
  if (list.empty() && !key.default_value.empty()) return "none";
  return join(list);
}

Value default_of(const Key& key) {
  if (!key.default_value.empty()) {
    if (auto v = parse_value(key, key.default_value)) return *v;
  }
  switch (key.type) {
    case Type::integer:
    case Type::bytes: return std::int64_t{0};
    case Type::boolean: return false;
    case Type::text:
    case Type::hostname:
    case Type::path:
    case Type::user:
    case Type::choice:
    case Type::host_port: return std::string{};
    default: return std::vector<std::string>{};
  }
}

}  // namespace wizmail::config
