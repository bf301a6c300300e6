// The admin umbrella: what the wizmail commands use on top of the embedding
// API (wizmail/wizmail.hpp, included here too): daemon start-up and the
// systemd unit, the control socket's protocol and client, the monitor,
// maintenance, local submission (wizmail-sendmail, notify), the `wizmail
// parse` tool, DKIM keys (`wizmail dkim`) and the JSON output of the --json
// forms.
#pragma once

#include "wizmail/admin/check_dns.hpp"
#include "wizmail/admin/cluster.hpp"
#include "wizmail/admin/control.hpp"
#include "wizmail/admin/daemon.hpp"
#include "wizmail/admin/dkim.hpp"
#include "wizmail/admin/json.hpp"
#include "wizmail/admin/maintenance.hpp"
#include "wizmail/admin/mime.hpp"
#include "wizmail/admin/monitor.hpp"
#include "wizmail/admin/submit.hpp"
#include "wizmail/wizmail.hpp"
