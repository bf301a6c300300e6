// SPF over libspf2 with our own DNS layer: libspf2's lookup callback
// (SPF_dns_server_t::lookup, spf2/spf_dns.h) answers from a mailauth::Dns,
// so the servers of `dns_servers` are asked, not libresolv's.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

extern "C" {
#include <spf2/spf.h>
#include <spf2/spf_dns.h>
#include <spf2/spf_dns_rr.h>
}

#include <cstdlib>
#include <cstring>
#include <memory>

#include "mailauth/mailauth.hpp"
#include "util/strings.hpp"

namespace wizmail::mailauth {

namespace {

struct Layer {
  const Dns* dns = nullptr;
  bool temporary = false;  // a question failed temporarily
  int lookups = 0;
};

SPF_dns_rr_t* lookup(SPF_dns_server_t* server, const char* domain, ns_type type, int /*should_cache*/) {
  auto* layer = static_cast<Layer*>(server->hook);
  ++layer->lookups;
  // SPF (type 99) records are obsolete (RFC 7208 §3.1): never asked.
  if (type != ns_t_a && type != ns_t_aaaa && type != ns_t_mx && type != ns_t_txt && type != ns_t_ptr)
    return SPF_dns_rr_new_init(server, domain, type, 0, NO_DATA);
  auto r = (*layer->dns)(domain ? domain : "", type);
  if (!r) {
    if (r.error().code == Errc::temporary) {
      layer->temporary = true;
      return SPF_dns_rr_new_init(server, domain, type, 0, TRY_AGAIN);
    }
    return SPF_dns_rr_new_init(server, domain, type, 0, HOST_NOT_FOUND);
  }
  if (r->status == outbound::DnsRecords::Status::nx_domain)
    return SPF_dns_rr_new_init(server, domain, type, 0, HOST_NOT_FOUND);
  if (r->status == outbound::DnsRecords::Status::no_data || r->records.empty())
    return SPF_dns_rr_new_init(server, domain, type, 0, NO_DATA);
  SPF_dns_rr_t* rr = SPF_dns_rr_new_init(server, domain, type, r->ttl, NETDB_SUCCESS);
  if (!rr) return nullptr;
  int n = 0;
  for (const auto& rec : r->records) {
    std::string value = rec;
    if (type == ns_t_mx) {  // "preference host"
      auto sp = value.find(' ');
      value = sp == std::string::npos ? value : value.substr(sp + 1);
    }
    std::size_t len = type == ns_t_a ? sizeof(in_addr) : type == ns_t_aaaa ? sizeof(in6_addr) : value.size() + 1;
    if (SPF_dns_rr_buf_realloc(rr, n, len) != SPF_E_SUCCESS) break;
    if (type == ns_t_a) {
      if (::inet_pton(AF_INET, value.c_str(), &rr->rr[n]->a) != 1) continue;
    } else if (type == ns_t_aaaa) {
      if (::inet_pton(AF_INET6, value.c_str(), &rr->rr[n]->aaaa) != 1) continue;
    } else {
      std::memcpy(rr->rr[n]->txt, value.c_str(), value.size() + 1);
    }
    ++n;
  }
  rr->num_rr = n;
  if (n == 0) rr->herrno = NO_DATA;
  return rr;
}

struct ServerFree {
  void operator()(SPF_server_t* s) const noexcept { SPF_server_free(s); }
};
struct RequestFree {
  void operator()(SPF_request_t* r) const noexcept { SPF_request_free(r); }
};
struct ResponseFree {
  void operator()(SPF_response_t* r) const noexcept { SPF_response_free(r); }
};

SpfResult map(SPF_result_t r) {
  switch (r) {
    case SPF_RESULT_PASS: return SpfResult::pass;
    case SPF_RESULT_FAIL: return SpfResult::fail;
    case SPF_RESULT_SOFTFAIL: return SpfResult::softfail;
    case SPF_RESULT_NEUTRAL: return SpfResult::neutral;
    case SPF_RESULT_NONE: return SpfResult::none;
    case SPF_RESULT_TEMPERROR: return SpfResult::temperror;
    case SPF_RESULT_PERMERROR: return SpfResult::permerror;
    default: return SpfResult::permerror;
  }
}

}  // namespace

std::string_view to_string(SpfResult r) noexcept {
  switch (r) {
    case SpfResult::none: return "none";
    case SpfResult::neutral: return "neutral";
    case SpfResult::pass: return "pass";
    case SpfResult::fail: return "fail";
    case SpfResult::softfail: return "softfail";
    case SpfResult::temperror: return "temperror";
    case SpfResult::permerror: return "permerror";
  }
  return "none";
}

SpfOutcome check_spf(const Dns& dns, std::string_view client_ip, std::string_view helo,
                     std::string_view sender, std::string_view receiver, bool helo_only) {
  SpfOutcome out;
  out.identity = helo_only ? "helo" : "mailfrom";
  std::string identity;
  if (helo_only || sender.empty()) {
    out.domain = util::to_lower(helo);
    identity = util::cat("postmaster@", out.domain);
  } else {
    identity = std::string(sender);
    auto at = identity.rfind('@');
    out.domain = util::to_lower(at == std::string::npos ? std::string_view(identity)
                                                        : std::string_view(identity).substr(at + 1));
    if (at != std::string::npos) identity = util::cat(identity.substr(0, at + 1), out.domain);
  }
  // An IP literal or an empty name has no SPF record (RFC 7208 §2.3).
  if (out.domain.empty() || out.domain.front() == '[' || out.domain.find('.') == std::string::npos) {
    out.result = SpfResult::none;
    out.reason = "no domain to check";
    return out;
  }
  Layer layer{&dns};
  // The layer lives on this stack frame; libspf2 never frees it (no destroy).
  SPF_dns_server_t server_layer{};
  server_layer.lookup = lookup;
  server_layer.name = "wizmail";
  server_layer.hook = &layer;
  std::unique_ptr<SPF_server_t, ServerFree> srv(SPF_server_new_dns(&server_layer, 0));
  if (!srv) {
    out.result = SpfResult::temperror;
    out.reason = "libspf2: no server";
    return out;
  }
  const std::string rec(receiver.empty() ? std::string_view("localhost") : receiver);
  SPF_server_set_rec_dom(srv.get(), rec.c_str());
  std::unique_ptr<SPF_request_t, RequestFree> req(SPF_request_new(srv.get()));
  const std::string ip(client_ip);
  SPF_errcode_t e = ip.find(':') != std::string::npos ? SPF_request_set_ipv6_str(req.get(), ip.c_str())
                                                      : SPF_request_set_ipv4_str(req.get(), ip.c_str());
  if (e != SPF_E_SUCCESS) {
    out.result = SpfResult::permerror;
    out.reason = util::cat("bad client address ", ip);
    return out;
  }
  const std::string h(helo.empty() ? std::string_view(out.domain) : helo);
  SPF_request_set_helo_dom(req.get(), h.c_str());
  if (SPF_request_set_env_from(req.get(), identity.c_str()) != 0) {
    out.result = SpfResult::permerror;
    out.reason = util::cat("bad identity ", identity);
    return out;
  }
  // SPF_request_query_mailfrom() without its first step, which passes
  // every loopback client ("localhost is always allowed"): who is checked
  // is wizmail's decision (mail_auth_exempt, loopback by default), so a
  // client that is checked is checked for real.
  std::unique_ptr<SPF_response_t, ResponseFree> resp(SPF_response_new(req.get()));
  if (!resp) {
    out.result = SpfResult::temperror;
    out.reason = "libspf2: no response";
    return out;
  }
  // The "current domain" (RFC 7208 §4.3) that query_mailfrom would set: the
  // identity's domain (the request keeps owning the string).
  req->cur_dom = req->env_from_dp;
  SPF_record_t* record = nullptr;
  SPF_errcode_t err = SPF_server_get_record(srv.get(), req.get(), resp.get(), &record);
  if (err != SPF_E_SUCCESS) {
    if (record) SPF_record_free(record);
    // NOT_SPF with errors noted: a record was found and did not compile.
    bool invalid = err != SPF_E_NOT_SPF;
    for (int i = 0; i < SPF_response_messages(resp.get()); ++i) {
      SPF_error_t* e = SPF_response_message(resp.get(), i);
      if (SPF_error_errorp(e) && SPF_error_code(e) != SPF_E_NOT_SPF) invalid = true;
    }
    out.result = layer.temporary ? SpfResult::temperror : invalid ? SpfResult::permerror : SpfResult::none;
    out.reason = layer.temporary ? "DNS look-up failed temporarily" : SPF_strerror(err);
    if (!layer.temporary && invalid && SPF_response_errors(resp.get()) > 0)
      if (const char* m = SPF_error_message(SPF_response_message(resp.get(), 0))) out.reason = m;
    return out;
  }
  // As SPF_request_query_record(): the record whose exp= explains a fail.
  resp->spf_record_exp = record;
  (void)SPF_record_interpret(record, req.get(), resp.get(), 0);
  resp->spf_record_exp = nullptr;
  SPF_record_free(record);
  out.result = map(SPF_response_result(resp.get()));
  {
    if (const char* c = SPF_response_get_header_comment(resp.get())) out.reason = c;
    if (out.reason.empty() && SPF_response_errors(resp.get()) > 0)
      if (const char* m = SPF_error_message(SPF_response_message(resp.get(), 0))) out.reason = m;
  }
  // A question that timed out never becomes a verdict of its own: what
  // libspf2 could not decide because of it is temperror (RFC 7208 §2.6.6).
  if (layer.temporary && out.result != SpfResult::pass && out.result != SpfResult::fail &&
      out.result != SpfResult::softfail) {
    out.result = SpfResult::temperror;
    out.reason = "DNS look-up failed temporarily";
  }
  return out;
}

}  // namespace wizmail::mailauth
