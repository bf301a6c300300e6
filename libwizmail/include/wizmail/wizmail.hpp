// The umbrella header: the whole public API of libwizmail.
#pragma once

#include "wizmail/account_store.hpp"
#include "wizmail/config.hpp"
#include "wizmail/error.hpp"
#include "wizmail/expected.hpp"
#include "wizmail/mailbox.hpp"
#include "wizmail/json.hpp"
#include "wizmail/maildir_delivery.hpp"
#include "wizmail/relay.hpp"
#include "wizmail/server.hpp"
