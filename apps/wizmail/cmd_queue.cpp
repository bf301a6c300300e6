// wizmail queue list [--json] | flush | delete ID | quarantine [--json] | release ID
// What Postfix users know as mailq, postqueue -f, postsuper -d, the hold
// queue (mailq's '!') and postsuper -H.
//
// flush: asks the running server over var/run/control.sock; if that server
// has no control command for it, sends SIGUSR1 to the pid in
// var/run/wizmail.pid (the daemon retries the whole queue on SIGUSR1). With
// no server running it makes every deferred entry due, so the next start
// tries them at once.
// delete: an entry being delivered right now (active/) is refused while a
// server runs (try again); with no server it is removed wherever it is.
// An id that is not in the queue but in the quarantine is deleted there.
// quarantine: the messages a milter quarantined (wizmail/quarantine.hpp).
// release: hands one to the running server's submit socket with its
// envelope (it is then delivered as locally submitted mail: the
// non_smtpd_milters see it, the smtpd_milters that held it do not), and
// removes it from the quarantine once the server accepted it.
#include <signal.h>

#include <cstring>
#include <ctime>
#include <iostream>

#include "commands.hpp"
#include "wizmail/admin/control.hpp"
#include "wizmail/admin/submit.hpp"
#include "wizmail/quarantine.hpp"
#include "wizmail/relay.hpp"
#include "wizmail/queue.hpp"

namespace wizmail::cli {

namespace {

std::string time_text(std::int64_t t) {
  if (t <= 0) return "now";
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  ::localtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

void list(Context& ctx, const RelayQueue& queue) {
  auto ids = queue.list();
  if (!ids) {
    ctx.error(ids.error());
    return;
  }
  auto json = Json::array();
  std::size_t shown = 0;
  for (const auto& id : *ids) {
    auto e = queue.load(id);
    if (!e) {
      // Moved on (delivered, deleted) between list and load, or unreadable.
      if (e.error().code != Errc::not_found) std::cerr << "wizmail: " << id << ": " << e.error().message << '\n';
      continue;
    }
    if (ctx.json) {
      auto recipients = Json::array();
      for (const auto& r : e->recipients) {
        recipients.push_back({{"address", r.address},
                              {"state", std::string(to_string(r.state))},
                              {"attempts", r.attempts},
                              {"last_reply", r.last_reply}});
      }
      json.push_back({{"id", e->id},
                      {"state", std::string(to_string(e->state))},
                      {"size", e->size},
                      {"created", e->created},
                      {"next_attempt", e->next_attempt},
                      {"sender", e->sender},
                      {"recipients", std::move(recipients)}});
    } else {
      std::cout << e->id << "  " << to_string(e->state) << "  " << e->size << " bytes  queued "
                << time_text(e->created) << "  next "
                << (e->state == QueueState::deferred ? time_text(e->next_attempt) : "now") << "\n  from <"
                << e->sender << ">\n";
      for (const auto& r : e->recipients) {
        std::cout << "  to <" << r.address << ">  " << to_string(r.state);
        if (r.attempts) std::cout << " after " << r.attempts << " attempt" << (r.attempts == 1 ? "" : "s");
        if (!r.last_reply.empty()) std::cout << ": " << r.last_reply;
        std::cout << '\n';
      }
    }
    ++shown;
  }
  if (ctx.json) std::cout << json_text(json) << '\n';
  else std::cout << (shown == 0 ? "the queue is empty\n" : "-- " + std::to_string(shown) + " message(s) queued\n");
}

void flush(Context& ctx, const std::filesystem::path& home, const RelayQueue& queue) {
  auto reply = control::call(control::control_socket_path(home, ctx.node_option), {control::Command::flush, false});
  if (reply) {
    if (control::check_reply(*reply)) {
      std::cout << "flush requested: the server retries every queued message now\n";
      return;
    }
  }
  if (auto pid = control::running_server(home, ctx.node_option)) {
    if (::kill(*pid, SIGUSR1) == 0) {
      std::cout << "flush requested (SIGUSR1 to pid " << *pid << ")\n";
      return;
    }
    ctx.error("cannot signal the server (pid " + std::to_string(*pid) + "): " + std::strerror(errno));
    return;
  }
  auto n = make_queue_due(queue);
  if (!n) {
    ctx.error(n.error());
    return;
  }
  std::cout << "the server is not running; " << *n
            << " deferred message(s) made due: they are tried as soon as it starts\n";
}

std::filesystem::path quarantine_dir(const RelayQueue& queue) { return queue.dir() / "quarantine"; }

void remove(Context& ctx, const std::filesystem::path& home, const RelayQueue& queue, const std::string& id) {
  bool running = control::running_server(home, ctx.node_option).has_value();
  if (auto st = delete_queue_entry(queue, id, !running); !st) {
    if (st.error().code == Errc::not_found && delete_quarantined(quarantine_dir(queue), id)) {
      std::cout << "deleted " << id << " (quarantined)\n";
      return;
    }
    ctx.error(st.error());
    return;
  }
  std::cout << "deleted " << id << '\n';
}

void list_quarantined(Context& ctx, const RelayQueue& queue) {
  auto all = list_quarantine(quarantine_dir(queue));
  if (!all) {
    ctx.error(all.error());
    return;
  }
  if (ctx.json) {
    auto json = Json::array();
    for (const auto& q : *all) {
      json.push_back({{"id", q.id},
                      {"reason", q.reason},
                      {"created", q.created},
                      {"size", q.size},
                      {"sender", q.sender},
                      {"recipients", q.recipients}});
    }
    std::cout << json_text(json) << '\n';
    return;
  }
  for (const auto& q : *all) {
    std::cout << q.id << "  quarantined " << time_text(q.created) << "  " << q.size << " bytes: " << q.reason
              << "\n  from <" << q.sender << ">\n";
    for (const auto& r : q.recipients) std::cout << "  to <" << r << ">\n";
  }
  std::cout << (all->empty() ? std::string("nothing is quarantined\n")
                             : std::string("-- ") + std::to_string(all->size()) + " message(s) quarantined\n");
}

void release(Context& ctx, const std::filesystem::path& home, const RelayQueue& queue, const std::string& id) {
  auto q = load_quarantined(quarantine_dir(queue), id);
  if (!q) {
    ctx.error(q.error());
    return;
  }
  if (auto st = submit::send(control::submit_socket_path(home), {q->sender, q->recipients}, q->message); !st) {
    ctx.error(st.error().code == Errc::unavailable
                  ? Error{Errc::unavailable, std::string("the server is not running: start it, then release ") + id}
                  : st.error());
    return;
  }
  // Accepted (and durable) before this: a crash here leaves a copy in the
  // quarantine that a second release would deliver again, never a loss.
  if (auto st = delete_quarantined(quarantine_dir(queue), id); !st) {
    ctx.error(Error{st.error().code, std::string("released ") + id + ", but it is still in the quarantine: " + st.error().message});
    return;
  }
  std::cout << "released " << id << " to " << q->recipients.size() << " recipient(s)\n";
}

}  // namespace

void add_queue_commands(CLI::App& app, Context& ctx) {
  auto* queue = app.add_subcommand("queue", "the outbound retry queue (resendmail/): list, flush, delete; quarantined mail: quarantine, release");
  queue->require_subcommand(1);
  auto id = std::make_shared<std::string>();

  auto with_queue = [&ctx](auto fn) {
    return [&ctx, fn] {
      auto home = ctx.home();
      if (!home) {
        ctx.error(home.error());
        return;
      }
      RelayQueue q(*home / "resendmail", ctx.node_option);
      fn(*home, q);
    };
  };

  auto* ls = queue->add_subcommand("list", "messages waiting for delivery, per recipient (like mailq)");
  ls->add_flag("--json", ctx.json, "print JSON");
  ls->callback(with_queue([&ctx](const std::filesystem::path&, const RelayQueue& q) { list(ctx, q); }));

  auto* fl = queue->add_subcommand("flush", "retry every queued message now (like postqueue -f)");
  fl->callback(with_queue([&ctx](const std::filesystem::path& h, const RelayQueue& q) { flush(ctx, h, q); }));

  auto* del = queue->add_subcommand("delete", "remove a queued message without a bounce (like postsuper -d)");
  del->add_option("ID", *id, "the queue id (see queue list, or queue quarantine)")->required();
  del->callback(
      with_queue([&ctx, id](const std::filesystem::path& h, const RelayQueue& q) { remove(ctx, h, q, *id); }));

  auto* qu = queue->add_subcommand("quarantine", "messages a milter quarantined, kept undelivered (the hold queue)");
  qu->add_flag("--json", ctx.json, "print JSON");
  qu->callback(with_queue([&ctx](const std::filesystem::path&, const RelayQueue& q) { list_quarantined(ctx, q); }));

  auto* rel = queue->add_subcommand(
      "release", "deliver a quarantined message to its recipients through the running server (like postsuper -H)");
  rel->add_option("ID", *id, "the id (see queue quarantine)")->required();
  rel->callback(
      with_queue([&ctx, id](const std::filesystem::path& h, const RelayQueue& q) { release(ctx, h, q, *id); }));
}

}  // namespace wizmail::cli
