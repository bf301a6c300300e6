#include "outbound/smtp_client.hpp"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <asio/connect.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "mime/dot_stuffer.hpp"
#include "util/strings.hpp"
#include "util/xtext.hpp"

// g++ 12 reports a false -Wmismatched-new-delete for some coroutine frames
// (Asio's awaitable_frame_base defines both its operator new and delete,
// so they always match): silence it for this file only.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace wizmail::outbound {

namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

struct FileFd {
  int fd = -1;
  ~FileFd() {
    if (fd >= 0) ::close(fd);
  }
};

std::string x509_name(X509_NAME* name) {
  if (!name) return {};
  BIO* bio = BIO_new(BIO_s_mem());
  if (!bio) return {};
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data ? data : "", data ? static_cast<std::size_t>(n) : 0);
  BIO_free(bio);
  return out;
}

}  // namespace

SmtpClient::SmtpClient(asio::any_io_executor ex, RelayTimeouts timeouts)
    : socket_(ex), timer_(ex), timeouts_(timeouts) {}

SmtpClient::~SmtpClient() { close(); }

void SmtpClient::arm(std::chrono::milliseconds timeout) {
  auto gen = ++arm_gen_;
  timer_.expires_after(timeout);
  timer_.async_wait([w = weak_from_this(), gen](std::error_code ec) {
    if (ec) return;
    auto self = w.lock();
    if (!self || self->arm_gen_ != gen) return;
    self->timed_out_ = true;
    std::error_code ignored;
    self->socket_.close(ignored);
  });
}

void SmtpClient::disarm() noexcept {
  ++arm_gen_;
  timer_.cancel();
}

void SmtpClient::close() noexcept {
  closed_ = true;
  disarm();
  std::error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
}

Error SmtpClient::io_error(std::string_view what, std::error_code ec) const {
  std::string msg = std::string(what) + ": ";
  if (timed_out_) msg += "timed out";
  else if (closed_) msg += "connection closed by us (stopping)";
  else msg += ec.message();
  return Error(Errc::temporary, msg);
}

asio::awaitable<Result<SmtpReply>> SmtpClient::connect(std::string address, std::uint16_t port) {
  std::error_code ec;
  auto addr = asio::ip::make_address(address, ec);
  if (ec) co_return fail(Errc::invalid_argument, "bad address '" + address + "'");
  remote_ = addr.is_v6() ? "[" + address + "]:" + std::to_string(port) : address + ":" + std::to_string(port);
  arm(timeouts_.connect);
  auto [cec] = co_await socket_.async_connect({addr, port}, use_tuple);
  disarm();
  if (cec) {
    std::error_code ignored;
    socket_.close(ignored);
    co_return unexpected(io_error("connect to " + remote_, cec));
  }
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  co_return co_await read_reply(timeouts_.greeting);
}

asio::awaitable<std::error_code> SmtpClient::write(std::string_view data, std::chrono::milliseconds timeout) {
  if (closed_ || !socket_.is_open()) co_return asio::error::not_connected;
  arm(timeout);
  std::error_code ec;
  if (tls_) {
    auto [e, n] = co_await asio::async_write(*tls_, asio::buffer(data), use_tuple);
    ec = e;
  } else {
    auto [e, n] = co_await asio::async_write(socket_, asio::buffer(data), use_tuple);
    ec = e;
  }
  disarm();
  co_return ec;
}

asio::awaitable<Result<SmtpReply>> SmtpClient::read_reply(std::chrono::milliseconds timeout) {
  for (;;) {
    auto step = parser_.parse(in_);
    in_.erase(0, step.used);
    if (step.status == ReplyParser::Status::done) co_return parser_.take();
    if (step.status == ReplyParser::Status::bad) {
      auto why = parser_.error();
      close();
      co_return fail(Errc::protocol, remote_ + ": " + why);
    }
    if (closed_ || !socket_.is_open()) co_return unexpected(io_error("read from " + remote_, asio::error::not_connected));
    char buf[4096];
    arm(timeout);
    std::error_code ec;
    std::size_t n = 0;
    if (tls_) {
      auto [e, k] = co_await tls_->async_read_some(asio::buffer(buf), use_tuple);
      ec = e;
      n = k;
    } else {
      auto [e, k] = co_await socket_.async_read_some(asio::buffer(buf), use_tuple);
      ec = e;
      n = k;
    }
    disarm();
    if (ec) {
      auto err = io_error("read from " + remote_, ec);
      close();
      co_return unexpected(err);
    }
    in_.append(buf, n);
  }
}

asio::awaitable<Result<SmtpReply>> SmtpClient::command(std::string line, std::chrono::milliseconds timeout) {
  line += "\r\n";
  if (auto ec = co_await write(line, timeout)) {
    auto err = io_error("write to " + remote_, ec);
    close();
    co_return unexpected(err);
  }
  co_return co_await read_reply(timeout);
}

asio::awaitable<Result<SmtpReply>> SmtpClient::hello(std::string name) {
  auto r = co_await command("EHLO " + name, timeouts_.command);
  if (!r) co_return r;
  if (r->positive()) {
    esmtp_ = true;
    caps_ = ehlo_capabilities(*r);
    co_return r;
  }
  if (!r->permanent()) co_return r;
  // RFC 5321 §3.2: an old server refuses EHLO; HELO then.
  esmtp_ = false;
  caps_.clear();
  co_return co_await command("HELO " + name, timeouts_.command);
}

asio::awaitable<Result<SmtpReply>> SmtpClient::starttls(net::TlsContextPtr context, std::string verify_name) {
  auto r = co_await command("STARTTLS", timeouts_.command);
  if (!r || r->code != 220) co_return r;
  // Anything the peer sent after its 220 was injected before TLS: drop it.
  in_.clear();
  tls_context_ = std::move(context);
  tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket&>>(socket_, *tls_context_);
  SSL* ssl = tls_->native_handle();
  if (verify_name.size() > 2 && verify_name.front() == '[' && verify_name.back() == ']')
    verify_name = verify_name.substr(1, verify_name.size() - 2);
  if (!verify_name.empty()) {
    std::error_code not_ip;
    (void)asio::ip::make_address(verify_name, not_ip);
    if (not_ip) {  // a host name
      ::SSL_set_tlsext_host_name(ssl, verify_name.c_str());
      ::SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      if (::SSL_set1_host(ssl, verify_name.c_str()) != 1) name_ok_ = false;
    } else if (::X509_VERIFY_PARAM_set1_ip_asc(::SSL_get0_param(ssl), verify_name.c_str()) != 1) {
      name_ok_ = false;
    }
  } else {
    name_ok_ = false;
    first_problem_ = "no name to check";
  }
  // Every problem is noted, none stops the handshake: the caller decides
  // by its TLS level (a verify level closes the session on anything short
  // of "verified").
  std::error_code vec;
  tls_->set_verify_mode(asio::ssl::verify_peer, vec);
  tls_->set_verify_callback(
      [this](bool preverified, asio::ssl::verify_context& vctx) {
        if (preverified) return true;
        int err = ::X509_STORE_CTX_get_error(vctx.native_handle());
        if (err == X509_V_ERR_HOSTNAME_MISMATCH || err == X509_V_ERR_IP_ADDRESS_MISMATCH) {
          name_ok_ = false;
          if (chain_ok_) first_problem_ = ::X509_verify_cert_error_string(err);
        } else if (chain_ok_) {
          chain_ok_ = false;
          first_problem_ = ::X509_verify_cert_error_string(err);
        }
        return true;
      },
      vec);
  arm(timeouts_.command);
  auto [ec] = co_await tls_->async_handshake(asio::ssl::stream_base::client, use_tuple);
  disarm();
  if (ec) {
    auto err = io_error("TLS handshake with " + remote_, ec);
    close();
    co_return unexpected(err);
  }
  caps_.clear();
  X509* cert = ::SSL_get0_peer_certificate(ssl);
  if (!cert) {
    chain_ok_ = false;
    first_problem_ = "no peer certificate";
  }
  // The context may trust nothing (no CA file): then no chain is good.
  if (::SSL_get_verify_result(ssl) != X509_V_OK && chain_ok_ && name_ok_) {
    chain_ok_ = false;
    first_problem_ = ::X509_verify_cert_error_string(::SSL_get_verify_result(ssl));
  }
  using Trust = Verification::Trust;
  verification_.trust = !chain_ok_ ? Trust::untrusted : !name_ok_ ? Trust::trusted : Trust::verified;
  verification_.reason = verification_.trust == Trust::verified ? std::string() : first_problem_;
  co_return r;
}

asio::awaitable<Result<TransactionResult>> SmtpClient::send_mail(std::string sender, std::vector<std::string> rcpts,
                                                                 std::filesystem::path body, MailOptions options) {
  const std::uint64_t size = options.size;
  TransactionResult tr;
  tr.rcpts.resize(rcpts.size());
  if (auto limit = find_capability(caps_, "SIZE"); limit && !limit->empty()) {
    auto max = util::parse_int(*limit);
    if (max && *max > 0 && size > static_cast<std::uint64_t>(*max)) {
      SmtpReply r;
      r.code = 552;
      r.enhanced = "5.3.4";
      r.lines = {"5.3.4 message size " + std::to_string(size) + " exceeds the peer's fixed limit " + *limit};
      tr.local_failure = r;
      co_return tr;
    }
  }
  FileFd file{::open(body.c_str(), O_RDONLY | O_CLOEXEC)};
  if (file.fd < 0) co_return fail_errno("open " + body.string(), errno);

  const bool dsn = has("DSN");
  std::string mail = "MAIL FROM:<" + sender + ">";
  if (has("SIZE")) mail += " SIZE=" + std::to_string(size);
  if (options.eight_bit && has("8BITMIME")) mail += " BODY=8BITMIME";
  if (options.smtputf8) mail += " SMTPUTF8";
  if (dsn && options.ret != DsnRet::unspecified) mail += " RET=" + std::string(to_string(options.ret));
  if (dsn && !options.envid.empty()) mail += " ENVID=" + util::encode_xtext(options.envid);
  mail += "\r\n";
  const bool pipelining = has("PIPELINING");
  auto rcpt_line = [&](std::size_t i) {
    std::string line = "RCPT TO:<" + rcpts[i] + ">";
    if (dsn && i < options.dsn.size()) {
      const auto& d = options.dsn[i];
      if (d.notify) line += " NOTIFY=" + format_dsn_notify(d.notify);
      if (!d.orcpt.empty()) line += " ORCPT=" + format_dsn_orcpt(d.orcpt);
    }
    return line;
  };

  auto fail_io = [&](std::string_view what, std::error_code ec) {
    auto err = io_error(std::string(what) + " " + remote_, ec);
    close();
    return unexpected(err);
  };

  std::size_t accepted = 0;
  if (pipelining) {
    std::string batch = mail;
    for (std::size_t i = 0; i < rcpts.size(); ++i) batch += rcpt_line(i) + "\r\n";
    batch += "DATA\r\n";
    if (auto ec = co_await write(batch, timeouts_.command)) co_return fail_io("write to", ec);
    auto m = co_await read_reply(timeouts_.command);
    if (!m) co_return unexpected(m.error());
    tr.mail = std::move(*m);
    for (std::size_t i = 0; i < rcpts.size(); ++i) {
      auto r = co_await read_reply(timeouts_.command);
      if (!r) co_return unexpected(r.error());
      tr.rcpts[i] = std::move(*r);
      if (tr.mail.positive() && tr.rcpts[i].positive()) ++accepted;
    }
    auto d = co_await read_reply(timeouts_.data_init);
    if (!d) co_return unexpected(d.error());
    tr.data = std::move(*d);
    if (tr.data.code == 354 && (accepted == 0 || !tr.mail.positive())) {
      // RFC 2920 §3.1: the peer accepted DATA although no recipient was
      // accepted; end the (empty) message so it is discarded.
      if (auto ec = co_await write(".\r\n", timeouts_.data_block)) co_return fail_io("write to", ec);
      auto e = co_await read_reply(timeouts_.data_end);
      if (!e) co_return unexpected(e.error());
      tr.end = std::move(*e);
      co_return tr;
    }
    if (tr.data.code != 354) {
      if (tr.mail.positive() && accepted > 0) co_return tr;  // DATA refused: caller sees tr.data
      auto rs = co_await command("RSET", timeouts_.command);
      if (!rs) co_return unexpected(rs.error());
      co_return tr;
    }
  } else {
    if (auto ec = co_await write(mail, timeouts_.command)) co_return fail_io("write to", ec);
    auto m = co_await read_reply(timeouts_.command);
    if (!m) co_return unexpected(m.error());
    tr.mail = std::move(*m);
    if (!tr.mail.positive()) {
      auto rs = co_await command("RSET", timeouts_.command);
      if (!rs) co_return unexpected(rs.error());
      co_return tr;
    }
    for (std::size_t i = 0; i < rcpts.size(); ++i) {
      auto r = co_await command(rcpt_line(i), timeouts_.command);
      if (!r) co_return unexpected(r.error());
      tr.rcpts[i] = std::move(*r);
      if (tr.rcpts[i].positive()) ++accepted;
    }
    if (accepted == 0) {
      auto rs = co_await command("RSET", timeouts_.command);
      if (!rs) co_return unexpected(rs.error());
      co_return tr;
    }
    auto d = co_await command("DATA", timeouts_.data_init);
    if (!d) co_return unexpected(d.error());
    tr.data = std::move(*d);
    if (tr.data.code != 354) {
      auto rs = co_await command("RSET", timeouts_.command);
      if (!rs) co_return unexpected(rs.error());
      co_return tr;
    }
  }

  // The body: CRLF line ends, dot-stuffed, then CRLF.CRLF.
  mime::DotStuffer stuffer;
  std::string out;
  if (!options.prefix.empty()) {
    stuffer.feed(options.prefix, out);
    if (auto ec = co_await write(out, timeouts_.data_block)) co_return fail_io("write message to", ec);
  }
  std::vector<char> buf(64 * 1024);
  for (;;) {
    ssize_t n = ::read(file.fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      // We cannot finish the message: drop the connection so the peer
      // never takes a truncated message for a whole one.
      int e = errno;
      close();
      co_return fail_errno("read " + body.string(), e);
    }
    if (n == 0) break;
    out.clear();
    stuffer.feed({buf.data(), static_cast<std::size_t>(n)}, out);
    if (auto ec = co_await write(out, timeouts_.data_block)) co_return fail_io("write message to", ec);
  }
  out.clear();
  stuffer.finish(out);
  if (options.may_finish && !options.may_finish()) {
    close();
    co_return fail(Errc::busy, "the queue entry was taken over by another node before the end of DATA; "
                               "not sent (the peer discards it)");
  }
  if (auto ec = co_await write(out, timeouts_.data_block)) co_return fail_io("write message to", ec);
  auto e = co_await read_reply(timeouts_.data_end);
  if (!e) co_return unexpected(e.error());
  tr.end = std::move(*e);
  co_return tr;
}

asio::awaitable<void> SmtpClient::quit() {
  if (socket_.is_open() && !closed_) {
    auto r = co_await command("QUIT", std::min(timeouts_.command, std::chrono::milliseconds(10'000)));
    // A reply came, so TLS is sound: end it with close_notify both ways
    // (command() closed the connection on any error).
    if (r && tls_ && socket_.is_open() && !closed_)
      co_await net::shutdown_tls(*tls_, std::chrono::steady_clock::now() + net::tls_close_wait);
  }
  close();
}

std::string SmtpClient::tls_description() const {
  if (!tls_) return {};
  SSL* ssl = const_cast<asio::ssl::stream<asio::ip::tcp::socket&>&>(*tls_).native_handle();
  std::string out = ::SSL_get_version(ssl);
  if (const char* c = ::SSL_get_cipher_name(ssl)) out += std::string(" ") + c;
  return out;
}

std::string SmtpClient::tls_summary() const {
  if (!tls_) return {};
  SSL* ssl = const_cast<asio::ssl::stream<asio::ip::tcp::socket&>&>(*tls_).native_handle();
  int alg_bits = 0;
  int bits = ::SSL_get_cipher_bits(ssl, &alg_bits);
  const char* cipher = ::SSL_get_cipher_name(ssl);
  return util::cat(::SSL_get_version(ssl), " with cipher ", cipher ? cipher : "?", " (", std::to_string(bits), "/",
                   std::to_string(alg_bits), " bits)");
}

std::string SmtpClient::peer_common_name() const {
  if (!tls_) return {};
  SSL* ssl = const_cast<asio::ssl::stream<asio::ip::tcp::socket&>&>(*tls_).native_handle();
  X509* cert = ::SSL_get0_peer_certificate(ssl);
  if (!cert) return {};
  X509_NAME* subject = X509_get_subject_name(cert);
  char cn[256] = {};
  int n = ::X509_NAME_get_text_by_NID(subject, NID_commonName, cn, sizeof cn);
  if (n > 0) {
    std::string out(cn, static_cast<std::size_t>(n));
    // Printable only: it goes into logs and notices.
    for (auto& c : out)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    return out;
  }
  return x509_name(subject);
}

std::optional<SmtpClient::CertInfo> SmtpClient::peer_certificate() const {
  if (!tls_) return std::nullopt;
  SSL* ssl = const_cast<asio::ssl::stream<asio::ip::tcp::socket&>&>(*tls_).native_handle();
  X509* cert = ::SSL_get1_peer_certificate(ssl);
  if (!cert) return std::nullopt;
  CertInfo info;
  info.subject = x509_name(X509_get_subject_name(cert));
  info.issuer = x509_name(X509_get_issuer_name(cert));
  if (BIO* bio = BIO_new(BIO_s_mem())) {
    ASN1_TIME_print(bio, X509_get0_notAfter(cert));
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    if (data) info.not_after.assign(data, static_cast<std::size_t>(n));
    BIO_free(bio);
  }
  X509_free(cert);
  return info;
}

}  // namespace wizmail::outbound
