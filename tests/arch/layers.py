#!/usr/bin/env python3
"""The include order of libwizmail's areas (docs/architecture.md, "Layers").

Reads the ```layers block of docs/architecture.md: one floor per line,
lowest first, each naming the areas (folders of libwizmail/src/) on it.
Fails, naming file and line, when
  - a file of libwizmail/src/<area>/ includes "<other>/..." where <other>
    is on the same floor or a higher one (areas on one floor are
    independent of each other; each may use only the floors below);
  - a public header (libwizmail/include/wizmail/) includes anything but
    other public headers (and the system's);
  - a file of apps/ or examples/ includes a private header (only
    "wizmail/..." and its own folder's files);
  - an area of src/ is missing from the block, or the block names an
    area that does not exist.
`layers.py --self-test` checks the checker on made-up trees first.
"""
import os
import re
import sys
import tempfile

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def read_layers(doc_text):
    m = re.search(r"^```layers\n(.*?)^```", doc_text, re.S | re.M)
    if not m:
        raise SystemExit('docs/architecture.md has no ```layers block')
    floors = {}
    for n, line in enumerate(m.group(1).splitlines()):
        for area in line.split("#")[0].split():
            if area in floors:
                raise SystemExit(f"layers: area {area} is named twice")
            floors[area] = n
    return floors


def includes(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            m = INCLUDE.match(line)
            if m:
                yield n, m.group(1)


def sources(top):
    for root, _, files in os.walk(top):
        for name in sorted(files):
            if name.endswith((".hpp", ".cpp", ".h", ".ipp")):
                yield os.path.join(root, name)


def check(repo):
    """Returns the list of violations (strings) in the tree at repo."""
    with open(os.path.join(repo, "docs", "architecture.md"), encoding="utf-8") as f:
        floors = read_layers(f.read())
    src = os.path.join(repo, "libwizmail", "src")
    problems = []
    present = sorted(d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d)))
    for area in present:
        if area not in floors:
            problems.append(f"libwizmail/src/{area}/: area not in the layers of docs/architecture.md")
    for area in floors:
        if area not in present:
            problems.append(f"layers of docs/architecture.md: no area libwizmail/src/{area}/")
    for area in present:
        if area not in floors:
            continue
        for path in sources(os.path.join(src, area)):
            rel = os.path.relpath(path, repo)
            for n, inc in includes(path):
                if "/" not in inc:
                    continue  # a file of the same folder
                other = inc.split("/", 1)[0]
                if other in ("wizmail", area):
                    continue
                if other not in floors:
                    problems.append(f"{rel}:{n}: includes \"{inc}\": {other}/ is no area")
                elif floors[other] >= floors[area]:
                    where = "the same floor as" if floors[other] == floors[area] else "above"
                    problems.append(f"{rel}:{n}: {area}/ includes \"{inc}\": {other}/ is {where} {area}/")
    public = os.path.join(repo, "libwizmail", "include", "wizmail")
    for path in sources(public):
        rel = os.path.relpath(path, repo)
        for n, inc in includes(path):
            if not inc.startswith("wizmail/"):
                problems.append(f"{rel}:{n}: public header includes private \"{inc}\"")
    for top in ("apps", "examples"):
        for path in sources(os.path.join(repo, top)):
            rel = os.path.relpath(path, repo)
            for n, inc in includes(path):
                if "/" in inc and not inc.startswith("wizmail/"):
                    problems.append(f"{rel}:{n}: {top}/ includes private \"{inc}\" (only wizmail/ headers)")
    return problems


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def self_test():
    doc = "# A\n\n```layers\nutil\nnet store  # one floor\nserver\n```\n"
    good = {
        "docs/architecture.md": doc,
        "libwizmail/src/util/a.hpp": '#include <string>\n#include "wizmail/error.hpp"\n',
        "libwizmail/src/net/b.cpp": '#include "net/b.hpp"\n#include "util/a.hpp"\n#include "c.hpp"\n',
        "libwizmail/src/store/c.cpp": '#include "util/a.hpp"\n',
        "libwizmail/src/server/d.cpp": '#include "net/b.hpp"\n#include "store/c.hpp"\n',
        "libwizmail/include/wizmail/e.hpp": '#include "wizmail/error.hpp"\n#include <asio.hpp>\n',
        "apps/x/main.cpp": '#include "wizmail/e.hpp"\n#include "commands.hpp"\n',
        "examples/y.cpp": '#include "wizmail/e.hpp"\n',
    }
    bad = [
        ("libwizmail/src/util/a.hpp", '#include "server/d.hpp"\n', "util/ includes \"server/d.hpp\": server/ is above util/"),
        ("libwizmail/src/net/b.cpp", 'x\n  #include "store/c.hpp"\n', "b.cpp:2: net/ includes \"store/c.hpp\": store/ is the same floor as net/"),
        ("libwizmail/src/store/c.cpp", '#include "nowhere/z.hpp"\n', "nowhere/ is no area"),
        ("libwizmail/include/wizmail/e.hpp", '#include "util/a.hpp"\n', "public header includes private"),
        ("apps/x/main.cpp", '#include "server/d.hpp"\n', "apps/ includes private"),
        ("libwizmail/src/extra/f.cpp", "\n", "extra/: area not in the layers"),
        ("docs/architecture.md", doc.replace("server\n", "server queue\n"), "no area libwizmail/src/queue/"),
    ]
    with tempfile.TemporaryDirectory() as d:
        for p, t in good.items():
            write(os.path.join(d, p), t)
        got = check(d)
        assert got == [], f"self-test: a tree that keeps the order was refused: {got}"
    for path, text, expect in bad:
        with tempfile.TemporaryDirectory() as d:
            for p, t in good.items():
                write(os.path.join(d, p), t)
            write(os.path.join(d, path), text)
            got = check(d)
            assert any(expect in g for g in got), f"self-test: {path} with {text!r} gave {got}, wanted {expect!r}"
    print("self-test: the checker finds each of", len(bad), "kinds of violation")


def main():
    repo = os.environ.get("WIZMAIL_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
    if "--self-test" in sys.argv:
        self_test()
    problems = check(repo)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} include(s) against the layers of docs/architecture.md")
        return 1
    print("every include keeps the layer order of docs/architecture.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
