// Private: the web console's static files (docs/console.md, "Pages"): the
// HTML, CSS, JS and i18n JSON of libwizmail/src/server/console/, compiled
// into the library by embed_console_assets.py, and Chart.js read from
// Debian's libjs-chart.js. The only answers given without a session.
#pragma once

#include <span>
#include <string_view>

namespace httplib {
class Server;
}

namespace wizmail::server::console_assets {

struct Asset {
  std::string_view path;          // "/" or "/assets/..."
  std::string_view content_type;
  std::string_view etag;          // quoted, from the bytes' SHA-256
  std::string_view body;
};

// The generated table (console_assets_data.cpp), sorted by source path.
std::span<const Asset> all();
const Asset* find(std::string_view path);

// Where Chart.js is looked for, first found wins (Debian's libjs-chart.js:
// chart.umd.js from 4.x, chart.min.js in bookworm's 3.9).
inline constexpr std::string_view chart_js_candidates[] = {
    "/usr/share/javascript/chart.js/chart.umd.js",
    "/usr/share/javascript/chart.js/chart.min.js",
};

// Whether an If-None-Match header names etag (a list, or "*").
bool etag_matches(std::string_view if_none_match, std::string_view etag);

// GET / (the page), /assets/<file> (the table), /assets/chart.js (from disk;
// 404 when libjs-chart.js is missing: the dashboard then shows no charts).
void register_routes(httplib::Server& server);

}  // namespace wizmail::server::console_assets
