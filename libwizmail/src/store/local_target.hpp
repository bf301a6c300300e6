// A local copy of a message to make: where it goes and what it records.
// The commit pipeline fills these for the local recipients of a message;
// the delivery agent takes those it handles (lists, hooks) out of them.
#pragma once

#include <filesystem>
#include <string>

#include "wizmail/dsn.hpp"

namespace wizmail::store {

struct LocalTarget {
  // The address the copy is delivered to (its Delivered-To): the recipient
  // as given — for the target of an alias, the alias address as it arrived.
  std::string address;
  std::string account;
  std::filesystem::path dir;  // the account folder (Maildir)
  DsnRequest dsn{};           // RFC 3461 NOTIFY / ORCPT
};

}  // namespace wizmail::store
