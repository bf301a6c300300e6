#include "server/session_connection.hpp"

#include "util/strings.hpp"

namespace wizmail::server {

Admission admit_client(SessionServices& srv, const Runtime& rt, const asio::ip::address& client) {
  Admission a;
  if (rt.exempt.contains(client)) return a;
  // One client network may not hold more than client_connection_limit
  // sessions; refused before it takes a multiprocessing slot.
  const auto& smtp = rt.config->smtp;
  const int per_client = effective_client_connection_limit(smtp);
  auto [ok, slot] = srv.client_connections.acquire(net::unmap(client).to_string(), per_client);
  if (!ok) {
    srv.counters.refused_busy.fetch_add(1, std::memory_order_relaxed);
    a.ok = false;
    a.per_client = true;
    a.why = util::cat("client_connection_limit ", std::to_string(per_client));
    return a;
  }
  if (srv.counters.capped.fetch_add(1) + 1 > smtp.multiprocessing) {
    srv.counters.capped.fetch_sub(1);
    srv.counters.refused_busy.fetch_add(1, std::memory_order_relaxed);
    a.ok = false;
    a.why = util::cat("multiprocessing limit ", std::to_string(smtp.multiprocessing));
    return a;  // the slot gives its place back
  }
  a.capped = true;
  a.slot = std::move(slot);
  return a;
}

std::string refusal_text(const Runtime& rt, bool pop, const Admission& a) {
  const std::string_view text = a.per_client ? "too many connections from your address" : "too many connections, try later";
  if (pop) return util::cat("-ERR [SYS/TEMP] ", text, "\r\n");
  return util::cat("421 4.7.0 ", rt.hostname, " ", a.per_client ? "Error: " : "", text, "\r\n");
}

SessionConnection::~SessionConnection() {
  if (capped_) srv_.counters.capped.fetch_sub(1, std::memory_order_relaxed);
  count().fetch_sub(1, std::memory_order_relaxed);
  if (srv_.ended) srv_.ended(id_);
}

void SessionConnection::shutdown(std::chrono::steady_clock::time_point deadline) {
  stopping_ = true;
  watchdog_.expire_at(deadline);
  if (reading_ && interruptible()) stream_.cancel();
}

asio::awaitable<SessionConnection::Read> SessionConnection::read_client() {
  using End = Read::End;
  watchdog_.touch();  // client silence starts now
  reading_ = true;
  auto [ec, data] = co_await stream_.read();
  reading_ = false;
  if (!ec) co_return Read{data.empty() ? End::closed : End::data, data, ec};
  if (ec == asio::error::operation_aborted && stream_.is_open()) {
    if (watchdog_.expired() && !stopping_)
      co_return Read{watchdog_.request_expired() ? End::request_deadline : End::silence, {}, ec};
    co_return Read{End::stop, {}, ec};
  }
  co_return Read{End::closed, {}, ec};
}

bool SessionConnection::identify_tcp_peer(std::string_view sid_prefix) {
  if (!stream_.load_endpoints() || !stream_.is_tcp()) return false;
  proxy_expected_ = !rt_->proxy_trusted.empty() && rt_->proxy_trusted.contains(stream_.remote().address());
  peer_ip_ = net::unmap(stream_.remote().address()).to_string();
  peer_ = peer_ip_ + ":" + std::to_string(stream_.remote().port());
  sid_ = session_id(sid_prefix, id_);
  note_.start(proto_, peer_);
  note_.update("connecting", "", "");
  std::error_code ignored;
  stream_.socket().set_option(net::tcp::no_delay(true), ignored);
  return true;
}

namespace {

net::tcp::endpoint endpoint_of(const net::proxy::Endpoint& e) {
  asio::ip::address a;
  if (e.address.v6) {
    asio::ip::address_v6::bytes_type b;
    std::copy(e.address.bytes.begin(), e.address.bytes.end(), b.begin());
    a = asio::ip::address_v6(b);
  } else {
    a = asio::ip::address_v4({e.address.bytes[0], e.address.bytes[1], e.address.bytes[2], e.address.bytes[3]});
  }
  return {a, e.port};
}

}  // namespace

asio::awaitable<bool> SessionConnection::take_proxy_header(bool pop) {
  if (!proxy_expected_) co_return true;
  const std::string proxy = peer_;
  reading_ = true;  // a stop cancels the read
  auto got = co_await stream_.read_proxy_header(std::chrono::steady_clock::now() + kProxyHeaderTime);
  reading_ = false;
  using Status = net::proxy::ParseResult::Status;
  if (got.ec == asio::error::operation_aborted && stopping_) {
    stream_.close();  // the server stops: not the peer's fault
    co_return false;
  }
  if (got.ec || got.result.status != Status::done) {
    std::string why = got.ec == asio::error::timed_out
                          ? util::cat("no PROXY protocol header within ", std::to_string(kProxyHeaderTime.count()), " s")
                      : got.ec == asio::error::eof ? std::string("closed before a complete PROXY protocol header")
                      : got.ec == asio::error::operation_aborted ? std::string("silent past session_timeout")
                      : got.ec                     ? util::cat("reading the PROXY protocol header: ", got.ec.message())
                                                   : util::cat("bad PROXY protocol header: ", got.result.reason);
    srv_.logger.log(LogFile::error, sid_, peer_, {},
                    util::cat("refused: ", why, " (the peer is in proxy_trusted_networks: it must send one)"));
    stream_.close();
    co_return false;
  }
  const auto& h = got.result.header;
  if (!h.local) {
    stream_.set_proxied(endpoint_of(h.source), endpoint_of(h.destination));
    peer_ip_ = net::unmap(stream_.remote().address()).to_string();
    peer_ = util::cat(peer_ip_, ":", std::to_string(stream_.remote().port()));
    note_.start(proto_, peer_);
    note_.update("connecting", "", "");
  }
  // The protocol's own log (smtp.log, pop.log) names the proxy once.
  srv_.logger.log(pop ? LogFile::pop : LogFile::smtp, sid_, peer_, {},
                  h.local ? util::cat("PROXY ", h.what, " from ", proxy, ": the proxy's own connection")
                          : util::cat("PROXY ", h.what, " via ", proxy));
  auto admitted = admit_client(srv_, *rt_, stream_.remote().address());
  if (!admitted.ok) {
    srv_.logger.log(LogFile::error, sid_, peer_, {}, util::cat("refused: ", admitted.why));
    if (proto_ != Protocol::smtps && proto_ != Protocol::pop3s)
      co_await stream_.write_all(refusal_text(*rt_, pop, admitted));
    stream_.close();
    co_return false;
  }
  capped_ = admitted.capped;
  slot_ = std::move(admitted.slot);
  co_return true;
}

asio::awaitable<bool> SessionConnection::untrusted_proxy_header_before_tls() {
  if (rt_->proxy_trusted.empty() || proxy_expected_) co_return false;
  watchdog_.touch();
  reading_ = true;  // the watchdog or a stop cancels the wait
  auto [ec, first] = co_await stream_.peek_start();
  reading_ = false;
  if (ec || !untrusted_proxy_header(first)) {
    first_bytes_seen_ = false;  // the first bytes are the handshake's, judged again as data after it
    co_return false;
  }
  stream_.close();
  co_return true;
}

bool SessionConnection::untrusted_proxy_header(std::string_view first_bytes) {
  if (first_bytes_seen_ || first_bytes.empty()) return false;
  first_bytes_seen_ = true;
  if (rt_->proxy_trusted.empty() || proxy_expected_ || !net::proxy::looks_like_header(first_bytes)) return false;
  srv_.logger.log(LogFile::error, sid_, peer_, {},
                  "refused: a PROXY protocol header from a peer outside proxy_trusted_networks");
  return true;
}

}  // namespace wizmail::server
