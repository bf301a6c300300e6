"""What a packager and an embedder get from `meson install`.

Installs the build tree into a temporary DESTDIR (`meson install --destdir`),
then, using only what was installed:
  - the library with its soname links, the headers, wizmail.pc, the apps and
    the manual-name links are where the build options say;
  - every installed public header compiles on its own with nothing but
    `pkg-config --cflags wizmail` and -std=c++23 (no source tree on the path);
  - examples/embed_server.cpp builds out of tree with
    `pkg-config --cflags --libs wizmail` and runs against a home made by the
    installed `wizmail setup` (LD_LIBRARY_PATH into the DESTDIR, as a packager
    runs an unpacked package): it answers EHLO on a free loopback port and
    delivers a message through its callback.

Usage: out_of_tree.py BUILD_DIR SOURCE_DIR [--sanitize] MANUAL_NAME...
"""
import concurrent.futures, glob, json, os, shutil, signal, smtplib, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from harness import check, free_port, wait_until  # noqa: E402

CXX = os.environ.get("CXX", "g++")
WARN = ["-Wall", "-Wextra", "-Wpedantic", "-Werror"]


def run(cmd, **kw):
    """Run cmd (never through a shell); on failure print its output and stop."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if p.returncode != 0:
        raise SystemExit(f"FAILED: {' '.join(cmd)} exited with {p.returncode}:\n{p.stdout}")
    return p.stdout


def main():
    build, source = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    args = sys.argv[3:]
    sanitize = "--sanitize" in args
    manual_names = sorted(a for a in args if a != "--sanitize")
    opts = {o["name"]: o["value"] for o in json.loads(run(["meson", "introspect", "--buildoptions", build]))}
    prefix = opts["prefix"]
    shared = opts["default_library"] != "static"
    version = json.loads(run(["meson", "introspect", "--projectinfo", build]))["version"]

    tmp = tempfile.mkdtemp(prefix="wizmail-install-")
    proc = None
    try:
        dest = os.path.join(tmp, "dest")
        # --no-rebuild: meson test has built the test's depends (every installed target).
        run(["meson", "install", "-C", build, "--no-rebuild", "--quiet", "--destdir", dest])
        check(os.path.isdir(dest), "meson install --destdir installed into the DESTDIR")

        def staged(key):
            return os.path.join(dest, os.path.join(prefix, opts[key]).lstrip("/"))
        bindir, libdir, incdir = staged("bindir"), staged("libdir"), staged("includedir")

        # The library and its soname chain.
        if shared:
            major = version.split(".")[0]
            so = os.path.join(libdir, "libwizmail.so")
            check(os.readlink(so) == f"libwizmail.so.{major}", "libwizmail.so -> libwizmail.so.MAJOR")
            check(os.readlink(f"{so}.{major}") == f"libwizmail.so.{version}",
                  "libwizmail.so.MAJOR -> libwizmail.so.VERSION")
            soname = run(["readelf", "-d", f"{so}.{version}"])
            check(f"[libwizmail.so.{major}]" in soname, f"the installed library's SONAME is libwizmail.so.{major}")
        if opts["default_library"] != "shared":
            check(os.path.isfile(os.path.join(libdir, "libwizmail.a")), "libwizmail.a installed")

        # The apps and the manual-name links (relative, to the installed binary).
        for app in ("wizmail", "wizmail-server", "wizmail-sendmail"):
            check(os.access(os.path.join(bindir, app), os.X_OK), f"{app} installed")
        links = sorted(n for n in os.listdir(bindir)
                       if os.path.islink(os.path.join(bindir, n))
                       and os.readlink(os.path.join(bindir, n)) == "wizmail")
        check(links == manual_names, f"the {len(manual_names)} manual names are links to wizmail in bindir")

        # Headers: the installed set is the source tree's, each compiles alone.
        # (paths below wizmail/, so the admin/ headers count too)
        def header_set(top):
            return sorted(os.path.relpath(h, top) for h in glob.glob(os.path.join(top, "**", "*.hpp"), recursive=True))
        src_headers = header_set(os.path.join(source, "libwizmail", "include", "wizmail"))
        inst_headers = header_set(os.path.join(incdir, "wizmail"))
        check(inst_headers == src_headers and src_headers, "every public header is installed")

        # pkg-config from the DESTDIR: PKG_CONFIG_PATH finds wizmail.pc and
        # PKG_CONFIG_SYSROOT_DIR puts the DESTDIR in front of its paths.
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(libdir, "pkgconfig"), PKG_CONFIG_SYSROOT_DIR=dest)
        pc = ["pkg-config"]  # a static-only wizmail.pc lists its libraries as public
        check(run(pc + ["--modversion", "wizmail"], env=env).strip() == version,
              "pkg-config finds the installed wizmail.pc with the project's version")
        cflags = run(pc + ["--cflags", "wizmail"], env=env).split()
        libs = run(pc + ["--libs", "wizmail"], env=env).split()
        for d in ("-DASIO_STANDALONE", "-DASIO_NO_DEPRECATED", "-DASIO_DISABLE_STD_ALIGNED_ALLOC"):
            check(d in cflags, f"Cflags carry {d}")
        check(f"-I{incdir}" in cflags, "Cflags point at the installed include directory")
        check(not any(f.startswith("-std=") for f in cflags), "Cflags choose no language standard")
        check("-lwizmail" in libs, "Libs carry -lwizmail")
        check(not any(source in f or build in f for f in cflags + libs),
              "no pkg-config flag points into the source or build tree")

        san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"] if sanitize else []
        work = os.path.join(tmp, "work")  # cwd of the compiler: nothing of the tree nearby
        os.makedirs(work)

        def compile_header(name):
            tu = os.path.join(work, name.replace("/", "_") + ".cpp")
            with open(tu, "w") as f:
                f.write(f"#include <wizmail/{name}>\n")
            p = subprocess.run([CXX, "-std=c++23", *WARN, *cflags, "-fsyntax-only", tu], cwd=work,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            return name, p.returncode, p.stdout
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            failed = [(n, out) for n, rc, out in pool.map(compile_header, inst_headers) if rc != 0]
        for n, out in failed:
            print(f"--- <wizmail/{n}> alone:\n{out}", flush=True)
        check(not failed, f"each of the {len(inst_headers)} installed headers compiles on its own "
                          "with pkg-config's Cflags and -std=c++23")

        # The example, out of tree, with pkg-config alone.
        example = os.path.join(work, "embed_server")
        shutil.copy(os.path.join(source, "examples", "embed_server.cpp"), work)
        run([CXX, "-std=c++23", *WARN, *san, *cflags, "embed_server.cpp", "-o", example, *libs], cwd=work)
        check(os.access(example, os.X_OK), "examples/embed_server.cpp builds out of tree with pkg-config alone")

        # Run as a packager runs an unpacked package: LD_LIBRARY_PATH into the
        # DESTDIR; the installed binaries must not find a library in the build tree.
        run_env = dict(os.environ, LD_LIBRARY_PATH=libdir)
        if shared:
            for exe in (os.path.join(bindir, "wizmail"), example):
                dyn = run(["readelf", "-d", exe])
                check(build not in dyn, f"{os.path.basename(exe)} carries no RPATH/RUNPATH into the build tree")
                resolved = [line for line in run(["ldd", exe], env=run_env).splitlines() if "libwizmail" in line]
                check(len(resolved) == 1 and f"=> {libdir}/libwizmail.so." in resolved[0],
                      f"{os.path.basename(exe)} loads libwizmail from the DESTDIR: {resolved}")

        home = os.path.join(tmp, "home")
        port, pop_port = free_port(), free_port()
        run([os.path.join(bindir, "wizmail"), "--home", home, "setup", "--smtp-port", str(port),
             "--pop-port", str(pop_port), "--bind", "127.0.0.1", "--domain", "localhost",
             "--password", "secret"], env=run_env)
        check(os.path.isfile(os.path.join(home, "def", "smtpenv.dat")), "the installed `wizmail setup` made a home")
        status = run([os.path.join(bindir, "wmsprtmailbox"), "--home", home], env=run_env)
        check("postmaster" in status, "the installed manual name wmsprtmailbox runs `mailbox status`")

        out_path = os.path.join(tmp, "embed.out")
        with open(out_path, "w") as out:
            proc = subprocess.Popen([example, home, "120"], stdout=out, stderr=subprocess.STDOUT, env=run_env)

        def answers():
            if proc.poll() is not None:
                raise SystemExit(f"FAILED: embed_server exited with {proc.returncode}:\n" + open(out_path).read())
            try:
                smtplib.SMTP("127.0.0.1", port, timeout=5).quit()
                return True
            except OSError:
                return False
        wait_until(answers, "the out-of-tree embed_server listens on its SMTP port")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            code, _ = s.ehlo("client.example")
            check(code == 250, "EHLO is answered 250")
            s.sendmail("sender@example.com", ["postmaster@localhost"],
                       "From: sender@example.com\r\nTo: postmaster@localhost\r\nSubject: out of tree\r\n\r\nhi\r\n")
            code, _ = s.docmd("QUIT")
            check(code == 221, "QUIT is answered 221")
        new = os.path.join(home, "mailbox", "postmaster", "new")
        wait_until(lambda: os.listdir(new), "the message is in postmaster's Maildir")
        body = open(os.path.join(new, os.listdir(new)[0]), "rb").read()
        check(b"X-Embedded-By: embed_server" in body, "the example's delivery callback rewrote the message")
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
        output = open(out_path).read()
        check(rc == 0 and "stopped" in output, f"embed_server stops cleanly on SIGTERM (rc {rc})")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
