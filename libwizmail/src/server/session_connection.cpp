#include "server/session_connection.hpp"

namespace wizmail::server {

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
  peer_ip_ = net::unmap(stream_.remote().address()).to_string();
  peer_ = peer_ip_ + ":" + std::to_string(stream_.remote().port());
  sid_ = session_id(sid_prefix, id_);
  note_.start(proto_, peer_);
  note_.update("connecting", "", "");
  std::error_code ignored;
  stream_.socket().set_option(net::tcp::no_delay(true), ignored);
  return true;
}

}  // namespace wizmail::server
