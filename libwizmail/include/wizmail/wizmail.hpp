// The embedding umbrella: the public API a program that runs or feeds a
// wizmail server needs (Server and its callbacks, accounts, mailboxes, lists,
// the retry queue, the relay, configuration, errors). The admin back end
// (daemon, control socket, monitor, maintenance, local submission, the parse
// tool) has its own umbrella, wizmail/admin.hpp.
#pragma once

#include "wizmail/account_store.hpp"
#include "wizmail/aliases.hpp"
#include "wizmail/autoreply.hpp"
#include "wizmail/config.hpp"
#include "wizmail/dsn.hpp"
#include "wizmail/error.hpp"
#include "wizmail/expected.hpp"
#include "wizmail/home.hpp"
#include "wizmail/hooks.hpp"
#include "wizmail/mailbox.hpp"
#include "wizmail/mailing_list.hpp"
#include "wizmail/pop_before_smtp.hpp"
#include "wizmail/quarantine.hpp"
#include "wizmail/queue.hpp"
#include "wizmail/relay.hpp"
#include "wizmail/server.hpp"
