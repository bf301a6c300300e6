// Nodes sharing one home (docs/cluster.md): each node started with --node
// writes a heartbeat to <home>/nodes/<node>/heartbeat every
// cluster_heartbeat_seconds; `wizmail cluster status`, the control
// socket's "cluster" command and the metrics read every node's from disk.
//
// The heartbeat file is key=value lines (the def files' form), one key a
// line, written to a temporary name and renamed over the old one:
//
//   node=mx1
//   pid=4711
//   host=mail-a.example.org
//   listen=smtp 127.0.0.1:25,pop3 127.0.0.1:110
//   started=1765080000
//   beat_ms=1765080123456
//   interval=5
//   sessions_smtp=3
//   sessions_pop3=1
//   queue_held=2
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail::cluster {

struct Heartbeat {
  std::string node;
  pid_t pid = 0;
  std::string host;                 // the machine's host name
  std::vector<std::string> listen;  // "<protocol> <address>:<port>", as bound
  std::int64_t started = 0;         // unix seconds
  std::int64_t beat_ms = 0;         // unix milliseconds of this beat
  int interval = 5;                 // seconds between beats (cluster_heartbeat_seconds)
  std::uint64_t sessions_smtp = 0;  // open now
  std::uint64_t sessions_pop3 = 0;
  std::uint64_t queue_held = 0;     // queue entries this node's runner has claimed now
};

// The file's text (pure).
std::string format_heartbeat(const Heartbeat& beat);
// Strict: every key above once, nothing else, each value well formed
// (node a valid node name, numbers in range, interval 1–300);
// Errc::parse naming the line and what is wrong otherwise.
Result<Heartbeat> parse_heartbeat(std::string_view text);

// Beats a node may miss before it counts as stale.
inline constexpr int kMissedBeats = 3;

struct NodeStatus {
  std::string name;                // the folder's name under nodes/
  std::optional<Heartbeat> beat;   // absent: no heartbeat file, or unreadable
  std::string problem;             // why `beat` is absent ("no heartbeat yet", the parse error)
  double age_seconds = -1;         // now - beat_ms; -1 without a beat
  bool alive = false;              // a beat at most kMissedBeats × interval old
};

// Pure: the status of one node given its heartbeat and the time now.
NodeStatus node_status(std::string name, std::optional<Heartbeat> beat,
                       std::chrono::system_clock::time_point now);

// Pure: the nodes whose claimed queue entries `self` takes over now: every
// other node whose heartbeat is older than `after` and than kMissedBeats + 1
// of its own intervals (a node beating slowly is not dead). A node without
// a readable heartbeat is never taken over: a node writes its first beat
// before it claims anything.
std::vector<std::string> nodes_to_take_over(const std::vector<NodeStatus>& nodes, std::string_view self,
                                            std::chrono::seconds after);

// Every node under <home>/nodes/ (folders with a valid node name, sorted by
// name), each with its heartbeat read now. No nodes/ folder: an empty list.
Result<std::vector<NodeStatus>> read_cluster_status(const std::filesystem::path& home,
                                                    std::chrono::system_clock::time_point now =
                                                        std::chrono::system_clock::now());

// {"nodes":[{"name":…,"alive":…,"state":"alive"|"stale"|"unknown",
// "heartbeat_age_seconds":…,"pid":…,"host":…,"listen":[…],"started":…,
// "interval":…,"sessions":{"smtp":…,"pop3":…},"queue_held":…}]}: one line.
std::string cluster_status_json(const std::vector<NodeStatus>& nodes);
// A table for a terminal, one line a node.
std::string cluster_status_table(const std::vector<NodeStatus>& nodes);

// Write `beat` to <node_dir>/heartbeat atomically (a temporary name in the
// same folder, then rename). Not fsynced: a heartbeat is volatile.
Status write_heartbeat(const std::filesystem::path& node_dir, const Heartbeat& beat);

}  // namespace wizmail::cluster
