// MX and address look-ups with c-ares. Chosen over libresolv because
// `dns_servers` may name IPv6 servers with ports ("[2001:db8::53]:53"), which
// c-ares takes as is (ares_set_servers_ports_csv) while glibc's res_state only
// holds IPv4 sockaddr_in; c-ares also reports NXDOMAIN / NODATA / SERVFAIL /
// time-out as distinct codes and parses replies for us. Each look-up runs a
// private channel to completion (poll on its sockets), so it is called from
// a worker thread, never from an I/O thread.
#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <poll.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <random>

#include "outbound/dns.hpp"
#include "util/strings.hpp"
#include "wizmail/relay.hpp"

namespace wizmail {

namespace {

void library_init() {
  static std::once_flag once;
  std::call_once(once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
}

struct Channel {
  ares_channel ch = nullptr;
  ~Channel() {
    if (ch) ares_destroy(ch);
  }
};

Result<void> open_channel(Channel& c, const ResolverOptions& opt) {
  library_init();
  ares_options o{};
  o.timeout = static_cast<int>(std::max<std::int64_t>(opt.timeout.count(), 1));
  o.tries = std::max(opt.tries, 1);
  int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
  if (int rc = ares_init_options(&c.ch, &o, mask); rc != ARES_SUCCESS)
    return fail(Errc::temporary, std::string("resolver: ") + ares_strerror(rc));
  if (!opt.servers.empty()) {
    std::string csv;
    for (const auto& s : opt.servers) csv += (csv.empty() ? "" : ",") + s;
    if (int rc = ares_set_servers_ports_csv(c.ch, csv.c_str()); rc != ARES_SUCCESS)
      return fail(Errc::invalid_argument, "dns_servers '" + csv + "': " + ares_strerror(rc));
  }
  return {};
}

// Drive the channel until every query finished.
void run(Channel& c) {
  for (;;) {
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    int bits = ares_getsock(c.ch, socks, ARES_GETSOCK_MAXNUM);
    pollfd fds[ARES_GETSOCK_MAXNUM];
    nfds_t n = 0;
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
      short ev = 0;
      if (ARES_GETSOCK_READABLE(bits, i)) ev |= POLLIN;
      if (ARES_GETSOCK_WRITABLE(bits, i)) ev |= POLLOUT;
      if (!ev) continue;
      fds[n++] = {socks[i], ev, 0};
    }
    if (n == 0) return;
    timeval tv{};
    timeval* tvp = ares_timeout(c.ch, nullptr, &tv);
    int ms = tvp ? static_cast<int>(tvp->tv_sec * 1000 + tvp->tv_usec / 1000) : 1000;
    int rc = ::poll(fds, n, ms);
    if (rc < 0 && errno != EINTR) return;
    if (rc <= 0) {
      ares_process_fd(c.ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
      continue;
    }
    for (nfds_t i = 0; i < n; ++i) {
      ares_socket_t r = (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) ? fds[i].fd : ARES_SOCKET_BAD;
      ares_socket_t w = (fds[i].revents & POLLOUT) ? fds[i].fd : ARES_SOCKET_BAD;
      if (r != ARES_SOCKET_BAD || w != ARES_SOCKET_BAD) ares_process_fd(c.ch, r, w);
    }
  }
}

Error status_error(int status, std::string_view what) {
  std::string msg = std::string(what) + ": " + ares_strerror(status);
  if (status == ARES_ENOTFOUND) return Error(Errc::not_found, msg);
  return Error(Errc::temporary, msg);
}

struct QueryResult {
  bool done = false;
  int status = ARES_ENOTFOUND;
  std::vector<unsigned char> answer;
};

void on_query(void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
  auto* r = static_cast<QueryResult*>(arg);
  r->done = true;
  r->status = status;
  // Negative answers too (NXDOMAIN, no data): their SOA gives their TTL.
  if (abuf && alen > 0) r->answer.assign(abuf, abuf + alen);
}

bool valid_domain(std::string_view d) {
  if (d.empty() || d.size() > 253) return false;
  for (char c : d) {
    auto u = static_cast<unsigned char>(c);
    if (!(std::isalnum(u) || c == '-' || c == '.' || c == '_')) return false;
  }
  return d.front() != '.' && d.find("..") == std::string_view::npos;
}

std::optional<std::string> ip_literal(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  std::string h(host);
  unsigned char buf[16];
  if (::inet_pton(AF_INET, h.c_str(), buf) == 1 || ::inet_pton(AF_INET6, h.c_str(), buf) == 1) return h;
  return std::nullopt;
}

}  // namespace

Result<std::vector<MailExchanger>> lookup_mx(std::string_view domain, const ResolverOptions& opt) {
  if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  if (!valid_domain(domain)) return fail(Errc::invalid_argument, "bad domain '" + std::string(domain) + "'");
  Channel c;
  if (auto st = open_channel(c, opt); !st) return unexpected(st.error());
  QueryResult qr;
  std::string name(domain);
  ares_query(c.ch, name.c_str(), ns_c_in, ns_t_mx, on_query, &qr);
  run(c);
  if (!qr.done) return fail(Errc::temporary, "MX " + name + ": no answer");
  if (qr.status == ARES_ENODATA) return std::vector<MailExchanger>{};
  if (qr.status != ARES_SUCCESS) return unexpected(status_error(qr.status, "MX " + name));
  ares_mx_reply* mx = nullptr;
  int rc = ares_parse_mx_reply(qr.answer.data(), static_cast<int>(qr.answer.size()), &mx);
  if (rc == ARES_ENODATA) return std::vector<MailExchanger>{};
  if (rc != ARES_SUCCESS) return unexpected(status_error(rc, "MX " + name));
  std::vector<MailExchanger> out;
  for (auto* p = mx; p; p = p->next) out.push_back({p->host ? p->host : "", p->priority});
  ares_free_data(mx);
  // RFC 7505: a single MX "." (empty name) means the domain takes no mail.
  if (out.size() == 1 && (out[0].host.empty() || out[0].host == "."))
    return fail(Errc::invalid_argument, "domain " + name + " accepts no mail (null MX)");
  std::erase_if(out, [](const MailExchanger& m) { return m.host.empty() || m.host == "."; });
  static thread_local std::mt19937 rng{std::random_device{}()};
  std::shuffle(out.begin(), out.end(), rng);
  std::stable_sort(out.begin(), out.end(),
                   [](const MailExchanger& a, const MailExchanger& b) { return a.preference < b.preference; });
  return out;
}

Result<std::vector<std::string>> lookup_addresses(std::string_view host, const ResolverOptions& opt) {
  if (auto lit = ip_literal(host)) return std::vector<std::string>{*lit};
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (!valid_domain(host)) return fail(Errc::invalid_argument, "bad host name '" + std::string(host) + "'");
  Channel c;
  if (auto st = open_channel(c, opt); !st) return unexpected(st.error());
  struct Out {
    bool done = false;
    int status = ARES_ENOTFOUND;
    std::vector<std::string> addrs;
  } out;
  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  std::string name(host);
  ares_getaddrinfo(
      c.ch, name.c_str(), nullptr, &hints,
      [](void* arg, int status, int, ares_addrinfo* res) {
        auto* o = static_cast<Out*>(arg);
        o->done = true;
        o->status = status;
        if (!res) return;
        for (auto* n = res->nodes; n; n = n->ai_next) {
          char buf[INET6_ADDRSTRLEN] = {};
          if (n->ai_family == AF_INET)
            ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(n->ai_addr)->sin_addr, buf, sizeof buf);
          else if (n->ai_family == AF_INET6)
            ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(n->ai_addr)->sin6_addr, buf, sizeof buf);
          else
            continue;
          if (std::find(o->addrs.begin(), o->addrs.end(), buf) == o->addrs.end()) o->addrs.emplace_back(buf);
        }
        ares_freeaddrinfo(res);
      },
      &out);
  run(c);
  if (!out.done) return fail(Errc::temporary, "address of " + name + ": no answer");
  if (out.status == ARES_ENODATA || (out.status == ARES_SUCCESS && out.addrs.empty()))
    return fail(Errc::not_found, "address of " + name + ": no A/AAAA record");
  if (out.status != ARES_SUCCESS) return unexpected(status_error(out.status, "address of " + name));
  return out.addrs;
}

Result<HostPort> parse_host_port(std::string_view text) {
  text = util::trim(text);
  HostPort hp;
  std::string_view port;
  if (text.empty()) return fail(Errc::invalid_argument, "empty host");
  if (text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return fail(Errc::invalid_argument, util::cat("'", text, "': missing ]"));
    hp.host = std::string(text.substr(1, close - 1));
    auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return fail(Errc::invalid_argument, util::cat("'", text, "': junk after ]"));
      port = rest.substr(1);
      if (port.empty()) return fail(Errc::invalid_argument, util::cat("'", text, "': empty port"));
    }
  } else {
    auto colon = text.find(':');
    if (colon != std::string_view::npos && text.find(':', colon + 1) != std::string_view::npos) {
      hp.host = std::string(text);  // a bare IPv6 address
    } else if (colon != std::string_view::npos) {
      hp.host = std::string(text.substr(0, colon));
      port = text.substr(colon + 1);
      if (port.empty()) return fail(Errc::invalid_argument, util::cat("'", text, "': empty port"));
    } else {
      hp.host = std::string(text);
    }
  }
  if (hp.host.empty()) return fail(Errc::invalid_argument, util::cat("'", text, "': empty host"));
  if (!ip_literal(hp.host) && !valid_domain(hp.host))
    return fail(Errc::invalid_argument, util::cat("'", text, "': bad host name"));
  if (!port.empty()) {
    auto p = util::parse_int(port);
    if (!p || *p < 1 || *p > 65535) return fail(Errc::invalid_argument, util::cat("'", text, "': bad port"));
    hp.port = static_cast<std::uint16_t>(*p);
  }
  return hp;
}

Result<std::vector<Hop>> route(std::string_view domain, const RouteOptions& opt) {
  if (!opt.smart_host.empty()) {
    auto hp = parse_host_port(opt.smart_host);
    if (!hp) return unexpected(hp.error());
    auto addrs = lookup_addresses(hp->host, opt.resolver);
    if (!addrs) {
      // The smart host is ours to fix, never the recipient's fault: retry.
      return fail(Errc::temporary, "smart host " + opt.smart_host + ": " + addrs.error().message);
    }
    return std::vector<Hop>{{hp->host, hp->port ? hp->port : opt.port, std::move(*addrs), 0}};
  }
  std::string d = util::to_lower(domain);
  // A domain-literal recipient ("user@[192.0.2.1]") goes to that address.
  if (auto lit = ip_literal(d)) return std::vector<Hop>{{*lit, opt.port, {*lit}, 0}};
  auto mx = lookup_mx(d, opt.resolver);
  if (!mx) return unexpected(mx.error());
  std::vector<Hop> hops;
  if (mx->empty()) {
    // RFC 5321 §5.1: no MX → the domain itself is the implicit MX.
    auto addrs = lookup_addresses(d, opt.resolver);
    if (!addrs) {
      if (addrs.error().code == Errc::not_found)
        return fail(Errc::not_found, "domain " + d + " has neither MX nor address records");
      return unexpected(addrs.error());
    }
    hops.push_back({d, opt.port, std::move(*addrs), 0});
    return hops;
  }
  std::string why;
  for (const auto& m : *mx) {
    auto addrs = lookup_addresses(m.host, opt.resolver);
    if (!addrs) {
      why += (why.empty() ? "" : "; ") + addrs.error().message;
      continue;
    }
    hops.push_back({m.host, opt.port, std::move(*addrs), m.preference});
  }
  if (hops.empty()) return fail(Errc::temporary, "no MX host of " + d + " has an address: " + why);
  return hops;
}

RouteOptions route_options(const Config& cfg) {
  RouteOptions r;
  r.smart_host = cfg.smtp.smart_host;
  r.port = static_cast<std::uint16_t>(cfg.smtp.outbound_port);
  r.resolver.servers = cfg.smtp.dns_servers;
  return r;
}

namespace outbound {

std::uint32_t negative_ttl(const std::vector<unsigned char>& m) {
  const std::size_t n = m.size();
  if (n < 12) return 0;
  auto u16 = [&](std::size_t p) { return static_cast<std::uint32_t>((m[p] << 8) | m[p + 1]); };
  auto u32 = [&](std::size_t p) { return (u16(p) << 16) | u16(p + 2); };
  // Past one (possibly compressed) name; n on a malformed one.
  auto skip_name = [&](std::size_t p) {
    while (p < n) {
      unsigned len = m[p];
      if (len == 0) return p + 1;
      if ((len & 0xc0) == 0xc0) return p + 2;
      p += len + 1;
    }
    return n;
  };
  const std::uint32_t qd = u16(4), an = u16(6), ns = u16(8);
  std::size_t p = 12;
  for (std::uint32_t i = 0; i < qd && p < n; ++i) p = skip_name(p) + 4;
  for (std::uint32_t i = 0; i < an + ns && p < n; ++i) {
    p = skip_name(p);
    if (p + 10 > n) return 0;
    const std::uint32_t type = u16(p), ttl = u32(p + 4), rdlen = u16(p + 8);
    const std::size_t rdata = p + 10;
    if (rdata + rdlen > n) return 0;
    if (i >= an && type == ns_t_soa) {
      std::size_t q = skip_name(skip_name(rdata));  // MNAME, RNAME
      if (q + 20 > rdata + rdlen) return 0;
      return std::min(ttl, u32(q + 16));  // SERIAL REFRESH RETRY EXPIRE MINIMUM
    }
    p = rdata + rdlen;
  }
  return 0;
}

namespace {

Result<DnsRecords> parse_records(const std::string& n, int type, const QueryResult& qr) {
  DnsRecords out;
  if (!qr.done) return fail(Errc::temporary, util::cat("DNS ", n, ": no answer"));
  if (qr.status == ARES_ENODATA) {
    out.status = DnsRecords::Status::no_data;
    out.ttl = static_cast<int>(negative_ttl(qr.answer));
    return out;
  }
  if (qr.status == ARES_ENOTFOUND) {
    out.status = DnsRecords::Status::nx_domain;
    out.ttl = static_cast<int>(negative_ttl(qr.answer));
    return out;
  }
  if (qr.status != ARES_SUCCESS) return fail(Errc::temporary, util::cat("DNS ", n, ": ", ares_strerror(qr.status)));
  const auto* abuf = qr.answer.data();
  const int alen = static_cast<int>(qr.answer.size());
  int rc = ARES_SUCCESS;
  switch (type) {
    case ns_t_a: {
      ares_addrttl a[32];
      int na = 32;
      rc = ares_parse_a_reply(abuf, alen, nullptr, a, &na);
      for (int i = 0; rc == ARES_SUCCESS && i < na; ++i) {
        char buf[INET_ADDRSTRLEN] = {};
        ::inet_ntop(AF_INET, &a[i].ipaddr, buf, sizeof buf);
        out.records.emplace_back(buf);
        if (out.ttl == 0 || a[i].ttl < out.ttl) out.ttl = a[i].ttl;
      }
      break;
    }
    case ns_t_aaaa: {
      ares_addr6ttl a[32];
      int na = 32;
      rc = ares_parse_aaaa_reply(abuf, alen, nullptr, a, &na);
      for (int i = 0; rc == ARES_SUCCESS && i < na; ++i) {
        char buf[INET6_ADDRSTRLEN] = {};
        ::inet_ntop(AF_INET6, &a[i].ip6addr, buf, sizeof buf);
        out.records.emplace_back(buf);
        if (out.ttl == 0 || a[i].ttl < out.ttl) out.ttl = a[i].ttl;
      }
      break;
    }
    case ns_t_mx: {
      ares_mx_reply* mx = nullptr;
      rc = ares_parse_mx_reply(abuf, alen, &mx);
      for (auto* p = mx; rc == ARES_SUCCESS && p; p = p->next)
        out.records.push_back(util::cat(std::to_string(p->priority), " ", p->host ? p->host : ""));
      if (mx) ares_free_data(mx);
      break;
    }
    case ns_t_txt: {
      ares_txt_ext* txt = nullptr;
      rc = ares_parse_txt_reply_ext(abuf, alen, &txt);
      for (auto* p = txt; rc == ARES_SUCCESS && p; p = p->next) {
        std::string_view piece(reinterpret_cast<const char*>(p->txt), p->length);
        if (p->record_start || out.records.empty()) out.records.emplace_back();
        out.records.back().append(piece);
      }
      if (txt) ares_free_data(txt);
      break;
    }
    case ns_t_ptr: {
      hostent* h = nullptr;
      unsigned char any[4] = {};  // copied into the hostent, unused
      rc = ares_parse_ptr_reply(abuf, alen, any, sizeof any, AF_INET, &h);
      if (rc == ARES_SUCCESS && h) {
        if (h->h_name) out.records.emplace_back(h->h_name);
        for (char** a = h->h_aliases; a && *a; ++a) out.records.emplace_back(*a);
      }
      if (h) ares_free_hostent(h);
      break;
    }
    default:
      return fail(Errc::invalid_argument, util::cat("DNS ", n, ": unsupported record type"));
  }
  if (rc == ARES_ENODATA) {
    out.records.clear();
    out.status = DnsRecords::Status::no_data;
    return out;
  }
  if (rc != ARES_SUCCESS) return fail(Errc::temporary, util::cat("DNS ", n, ": ", ares_strerror(rc)));
  if (out.records.empty()) out.status = DnsRecords::Status::no_data;
  return out;
}

}  // namespace

std::vector<Result<DnsRecords>> query_many(const std::vector<std::string>& names, int type,
                                           const ResolverOptions& opt) {
  std::vector<Result<DnsRecords>> out;
  std::vector<std::string> asked(names.size());
  std::vector<QueryResult> results(names.size());
  std::vector<bool> valid(names.size(), false);
  Channel c;
  auto st = open_channel(c, opt);
  for (std::size_t i = 0; i < names.size(); ++i) {
    std::string_view name = names[i];
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    asked[i] = std::string(name);
    valid[i] = valid_domain(name);
    if (st && valid[i]) ares_query(c.ch, asked[i].c_str(), ns_c_in, type, on_query, &results[i]);
  }
  if (st) run(c);
  out.reserve(names.size());
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (!valid[i])
      out.push_back(fail(Errc::invalid_argument, "bad domain '" + names[i] + "'"));
    else if (!st)
      out.push_back(unexpected(st.error()));
    else
      out.push_back(parse_records(asked[i], type, results[i]));
  }
  return out;
}

Result<DnsRecords> query_records(std::string_view name, int type, const ResolverOptions& opt) {
  return std::move(query_many({std::string(name)}, type, opt).front());
}

}  // namespace outbound

}  // namespace wizmail
