// The web console's account holder requests (docs/console.md): one's own
// mailbox use against the quota, forwarding (forward.def) and the vacation
// reply (reply.def and its text) — written as the delivery agent reads them
// (SPEC §8, docs/delivery-agent.md), so nobody writes def files by hand.
// Every path is the session's own account folder: no name comes from the
// client.
#include <unistd.h>

#include <mutex>

#include "server/console_api.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/hooks.hpp"
#include "wizmail/mailbox.hpp"

namespace wizmail::server::console {

namespace {
using nlohmann::json;
using Req = httplib::Request;
using Res = httplib::Response;
namespace fs = std::filesystem;

std::mutex& self_mutex() {
  static std::mutex mu;
  return mu;
}

// The hook program: wizmail-sendmail, found on the server's PATH as the
// manual's recipes have it (posix_spawnp).
constexpr std::string_view sendmail = "wizmail-sendmail";
constexpr std::string_view header_comment =
    "# Written by the wizmail web console (docs/console.md); change it there.\n";

std::optional<fs::path> own_dir(const Config& cfg, const WebSession& s, Res& res) {
  AccountStore store(cfg.mailbox_dir());
  auto dir = store.account_dir(s.account);
  if (!dir) {
    send_error(res, 400, dir.error().message);
    return std::nullopt;
  }
  std::error_code ec;
  if (!fs::is_directory(*dir, ec)) {
    send_error(res, 404, "your account no longer exists");
    return std::nullopt;
  }
  return *dir;
}

// forward.def as the console writes it: the manual's forwarding 2
// (`FROM_ADDRESS <addresses> -mf MAILFILE_PATH`).
std::string forward_def(const std::vector<std::string>& addresses) {
  std::string list;
  for (const auto& a : addresses) util::append(list, list.empty() ? "" : ",", a);
  return util::cat(header_comment, "bin=", sendmail, "\nparam1=FROM_ADDRESS\nparam2=", list,
                   "\nparam3=-mf\nparam4=MAILFILE_PATH\n");
}

bool is_sendmail(const HookDef& d) {
  return d.command.size() == 1 && (d.command[0] == sendmail || d.command[0].ends_with("/wizmail-sendmail"));
}

// The addresses of a forward.def the console could have written; nullopt
// for another hook (written by hand: shown as custom, replaced on PUT).
std::optional<std::vector<std::string>> forward_addresses(const HookDef& d) {
  if (!is_sendmail(d) || d.params.size() != 4 || d.params[0] != "FROM_ADDRESS" || d.params[2] != "-mf" ||
      d.params[3] != "MAILFILE_PATH")
    return std::nullopt;
  return util::split_list(d.params[1]);
}

// reply.def as the console writes it: the manual's auto-reply recipe
// (`TO_ADDRESS FROM_ADDRESS -sb FILE`), the subject-and-body file beside
// it, and the dates as active_from/active_until (the agent skips the hook
// outside them). Off = the same text in reply.def.off, which no hook reads.
std::string reply_def(const fs::path& text_file, const VacationSettings& v) {
  std::string out = util::cat(header_comment, "bin=", sendmail,
                              "\nparam1=TO_ADDRESS\nparam2=FROM_ADDRESS\nparam3=-sb\nparam4=", text_file.string(), "\n");
  if (!v.from.empty()) util::append(out, "active_from=", v.from, "\n");
  if (!v.until.empty()) util::append(out, "active_until=", v.until, "\n");
  return out;
}

void mailbox(const Api& api, const Req& req, Res& res) {
  auto s = api.session(req, res);
  if (!s) return;
  auto cfg = api.deps->config();
  auto dir = own_dir(*cfg, *s, res);
  if (!dir) return;
  // What `wizmail monitor` counts (Mailbox::totals), against the account's
  // quota (config.def overrides the server's).
  auto t = Mailbox(*dir).totals();
  if (!t) return send_error(res, 500, t.error().message);
  auto settings = cfg->account_settings(s->account);
  if (!settings) return send_error(res, 500, settings.error().message);
  send_json(res, 200, json{{"account", s->account},
                           {"messages", t->messages},
                           {"bytes", t->bytes},
                           {"quota", {{"messages", settings->mailbox_capacity_mail_count},
                                      {"bytes", settings->mailbox_capacity_mail_size}}}});
}

void get_forward(const Api& api, const Req& req, Res& res) {
  auto s = api.session(req, res);
  if (!s) return;
  auto cfg = api.deps->config();
  auto dir = own_dir(*cfg, *s, res);
  if (!dir) return;
  json out{{"addresses", json::array()}, {"keep_copy", true}, {"custom", false}};
  auto text = util::read_file(*dir / "forward.def");
  if (!text && text.error().code != Errc::not_found) return send_error(res, 500, text.error().message);
  if (text) {
    auto def = parse_hook_def(*text, (*dir / "forward.def").string());
    auto a = def ? forward_addresses(*def) : std::nullopt;
    if (a) out["addresses"] = *a;
    else out["custom"] = true;
  }
  send_json(res, 200, out);
}

void put_forward(const Api& api, const Req& req, Res& res) {
  auto s = api.session(req, res);
  if (!s) return;
  auto f = parse_forward(req.body);
  if (!f) return send_error(res, 400, f.error().message);
  // forward.def runs after the message is stored (SPEC §8): a copy is always kept.
  if (!f->keep_copy)
    return send_error(res, 400, "keep_copy: wizmail always keeps a copy (forwarding runs after the message is stored)");
  for (std::size_t i = 0; i < f->addresses.size(); ++i)
    if (auto st = AccountStore::validate_address(f->addresses[i]); !st)
      return send_error(res, 400, util::cat("addresses[", std::to_string(i), "]: ", st.error().message));
  auto cfg = api.deps->config();
  auto dir = own_dir(*cfg, *s, res);
  if (!dir) return;
  std::lock_guard lk(self_mutex());
  auto path = *dir / "forward.def";
  if (f->addresses.empty()) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return send_error(res, 500, "cannot remove forward.def");
  } else {
    auto text = forward_def(f->addresses);
    // What is written must be what the agent reads.
    if (auto d = parse_hook_def(text, path.string()); !d || !forward_addresses(*d))
      return send_error(res, 400, "the addresses cannot be written to forward.def");
    if (auto st = util::write_file_atomic(path, text, 0600); !st) return send_error(res, 500, st.error().message);
  }
  send_json(res, 200, json{{"addresses", f->addresses}, {"keep_copy", true}});
}

void get_vacation(const Api& api, const Req& req, Res& res) {
  auto s = api.session(req, res);
  if (!s) return;
  auto cfg = api.deps->config();
  auto dir = own_dir(*cfg, *s, res);
  if (!dir) return;
  json out{{"enabled", false}, {"subject", ""}, {"text", ""}, {"from", ""}, {"until", ""}, {"custom", false}};
  for (const char* name : {"reply.def", "reply.def.off"}) {
    auto text = util::read_file(*dir / name);
    if (!text) {
      if (text.error().code != Errc::not_found) return send_error(res, 500, text.error().message);
      continue;
    }
    out["enabled"] = std::string_view(name) == "reply.def";
    auto def = parse_hook_def(*text, (*dir / name).string());
    if (!def || !is_sendmail(*def) || def->params.size() != 4 || def->params[2] != "-sb" ||
        def->params[3] != (*dir / "vacation.txt").string()) {
      out["custom"] = true;
      break;
    }
    out["from"] = def->active_from;
    out["until"] = def->active_until;
    if (auto body = util::read_file(*dir / "vacation.txt")) {
      // Line 1 the subject, the rest the text (wizmail-sendmail -sb).
      auto nl = body->find('\n');
      out["subject"] = body->substr(0, nl);
      out["text"] = nl == std::string::npos ? std::string() : body->substr(nl + 1);
    }
    break;
  }
  send_json(res, 200, out);
}

void put_vacation(const Api& api, const Req& req, Res& res) {
  auto s = api.session(req, res);
  if (!s) return;
  auto v = parse_vacation(req.body);
  if (!v) return send_error(res, 400, v.error().message);
  auto cfg = api.deps->config();
  auto dir = own_dir(*cfg, *s, res);
  if (!dir) return;
  std::lock_guard lk(self_mutex());
  auto text_file = *dir / "vacation.txt";
  auto def = reply_def(text_file, *v);
  if (auto d = parse_hook_def(def, (*dir / "reply.def").string()); !d)
    return send_error(res, 400, d.error().message);
  if (auto st = util::write_file_atomic(text_file, util::cat(v->subject, "\n", v->text), 0600); !st)
    return send_error(res, 500, st.error().message);
  auto on = *dir / "reply.def", off = *dir / "reply.def.off";
  if (auto st = util::write_file_atomic(v->enabled ? on : off, def, 0600); !st)
    return send_error(res, 500, st.error().message);
  const auto& other = v->enabled ? off : on;
  if (::unlink(other.c_str()) != 0 && errno != ENOENT)
    return send_error(res, 500, util::cat("cannot remove ", other.filename().string()));
  send_json(res, 200, json{{"enabled", v->enabled}, {"subject", v->subject}, {"text", v->text},
                           {"from", v->from}, {"until", v->until}});
}
}  // namespace

void add_self_routes(httplib::Server& h, const Api& api) {
  h.Get("/api/me/mailbox", [api](const Req& req, Res& res) { mailbox(api, req, res); });
  h.Get("/api/me/forward", [api](const Req& req, Res& res) { get_forward(api, req, res); });
  h.Put("/api/me/forward", [api](const Req& req, Res& res) { put_forward(api, req, res); });
  h.Get("/api/me/vacation", [api](const Req& req, Res& res) { get_vacation(api, req, res); });
  h.Put("/api/me/vacation", [api](const Req& req, Res& res) { put_vacation(api, req, res); });
}

}  // namespace wizmail::server::console
