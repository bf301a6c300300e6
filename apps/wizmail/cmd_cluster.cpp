// wizmail cluster status [--json]: the nodes sharing this home, from their
// heartbeats under HOME/nodes/ (docs/cluster.md).
//
// Exit status: 0 = listed (stale nodes included); 1 = nodes/ unreadable.
#include <iostream>

#include "commands.hpp"
#include "wizmail/admin/cluster.hpp"

namespace wizmail::cli {

void add_cluster_commands(CLI::App& app, Context& ctx) {
  auto* cluster = app.add_subcommand("cluster", "the nodes sharing this home (docs/cluster.md)");
  cluster->require_subcommand(1);
  auto* status = cluster->add_subcommand(
      "status",
      "every node under HOME/nodes/ with the age of its last heartbeat, alive or stale (stale: "
      "3 heartbeats missed, each cluster_heartbeat_seconds apart; unknown: no readable heartbeat), its SMTP and POP3 sessions and the "
      "queue entries it holds; read from the heartbeat files, so it works with every node down. "
      "The control socket's \"cluster\" command answers the same");
  status->add_flag("--json", ctx.json,
                   "one JSON line: {\"nodes\":[{\"name\",\"alive\",\"state\",\"heartbeat_age_seconds\",\"pid\","
                   "\"host\",\"listen\",\"started\",\"interval\",\"sessions\":{\"smtp\",\"pop3\"},\"queue_held\"}]}");
  status->callback([&ctx] {
    auto home = ctx.home();
    if (!home) return ctx.error(home.error());
    auto nodes = cluster::read_cluster_status(*home);
    if (!nodes) return ctx.error(nodes.error());
    if (ctx.json) std::cout << cluster::cluster_status_json(*nodes) << '\n';
    else std::cout << cluster::cluster_status_table(*nodes);
  });
}

}  // namespace wizmail::cli
