#!/usr/bin/env python3
"""Write the starting inputs ("seed-*") of every fuzz target into
tests/fuzz/corpus/<target>/ from the repository's own test material (the SMTP
golden transcripts, the def files `wizmail setup` writes) and a few
hand-made cases. Run once when a target is added; `scripts/fuzz --update-corpus`
then keeps a minimised corpus. Usage: seed_corpora.py BUILD_DIR (for the
`wizmail` program that writes the default def files)."""
import hashlib
import os
import re
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def unescape(s):
    """The transcript escapes: \\r \\n \\t \\0 \\\\ \\xHH."""
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\" or i + 1 == len(s):
            out += c.encode("latin-1")
            i += 1
            continue
        e = s[i + 1]
        if e == "x":
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
            continue
        out += {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\"}[e]
        i += 2
    return bytes(out)


def transcripts():
    """(name, option byte 0, option byte 1, client bytes) per transcript;
    the option bits are those of tests/fuzz/smtp_session.cpp."""
    tdir = os.path.join(ROOT, "tests", "smtp", "transcripts")
    for fn in sorted(os.listdir(tdir)):
        if not fn.endswith(".in"):
            continue
        a = b = 0
        client = bytearray()
        with open(os.path.join(tdir, fn), encoding="latin-1") as f:
            for line in f.read().split("\n"):
                if line.startswith("C: ") or line == "C:":
                    client += unescape(line[3:]) + b"\r\n"
                elif line.startswith("c: "):
                    client += unescape(line[3:])
                elif line.startswith("@option listener=submission"):
                    a |= 1
                elif line.startswith("@option listener=smtps"):
                    a |= 2
                elif line.startswith("@option tls_available=1"):
                    a |= 4
                elif line.startswith("@config auth_requires_tls=1"):
                    a |= 8
                elif line.startswith("@config relay=1"):
                    a |= 16
                elif line.startswith("@config send_permits_only_smtp_auth=1"):
                    a |= 32
                elif line.startswith("@config pop_before_smtp=1"):
                    a |= 64
                elif line.startswith("@commit fail"):
                    a |= 128
                elif line.startswith("@option client_ip=127."):
                    b |= 2
                elif line.startswith("@option client_ip=2001:"):
                    b |= 3
                elif line.startswith("@config max_mail_size="):
                    b |= 4
                elif line.startswith("@config max_recipients="):
                    b |= 8
                elif line.startswith("@sinkfail begin"):
                    b |= 16
                elif line.startswith("@sinkfail write"):
                    b |= 32
                elif line.startswith("@option max_errors="):
                    b |= 128
        yield fn[:-3], a, b, bytes(client)


def data_sections(client):
    """The bytes after each DATA command line."""
    for m in re.finditer(rb"(?im)^DATA\r?\n", client):
        yield client[m.end():]


def smtp():
    for name, a, b, client in transcripts():
        put("smtp_session", name, bytes([a, b, 7]) + client)
        put("smtp_command", name, bytes([5, 0]) + client)
        for i, body in enumerate(data_sections(client)):
            put("smtp_data", "%s-%d" % (name, i), bytes([3, 0, 1]) + body)
        for m in re.finditer(rb"(?i)(?:MAIL FROM:|RCPT TO:) ?([^\r\n]*)", client):
            put("smtp_address", "%s-%d" % (name, m.start()), b"\x03" + m.group(1))
    for i, v in enumerate([b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\rX", b"\n..\n",
                           b"\r\n.\r\r\n", b"\r\n\r.\r\n"]):
        put("smtp_data", "smuggle-%d" % i, b"\x00\x00\x00body" + v + b"MAIL FROM:<x@y>\r\n.\r\nQUIT\r\n")
    put("smtp_data", "stuffed", b"\x09\x00\x00Received: a\r\nReceived: b\r\nSubject: x\r\n\r\n..a\r\n.\r\n")
    put("smtp_data", "pop3-retr", b"\x01\x04\x02Subject: x\r\n\r\n.dot\n.\r\nline\rbare\r")
    put("smtp_data", "long-line", b"\x02\x00\x00" + b"x" * 1200 + b"\r\n.\r\n")
    for i, p in enumerate([b"<>", b"<postmaster>", b"<\"a b\\\"c\"@Example.ORG> SIZE=10",
                           b"<@a.example,@b.example:u@c.example>", b"<u@[192.0.2.1]>",
                           b"<u@[IPv6:2001:db8::1]>", b"<u@[IPv6:::ffff:192.0.2.1]>",
                           b"192.0.2.0/24", b"::ffff:192.0.2.0/120", b"2001:db8::/32"]):
        put("smtp_address", "hand-%d" % i, b"\x03" + p)
    put("smtp_command", "auth-long", b"\x09\x00AUTH PLAIN " + b"A" * 1500 + b"\r\n" + b"B" * 600 + b"\r\n")
    put("smtp_command", "params", b"\x01\x00MAIL FROM:<a@b> SIZE=100 BODY=8BITMIME AUTH=a+2Bb\r\n")


def pop3():
    scripts = {
        "login": "USER alice\r\nPASS secret\r\nSTAT\r\nLIST\r\nLIST 2\r\nUIDL\r\nUIDL 6\r\n"
                 "RETR 2\r\nRETR 3\r\nTOP 2 1\r\nTOP 5 0\r\nDELE 1\r\nDELE 1\r\nRSET\r\nDELE 4\r\nNOOP\r\nQUIT\r\n",
        "apop": "APOP alice 0123456789abcdef0123456789abcdef\r\nCAPA\r\nQUIT\r\n",
        "apop-ok": "APOP alice@example.com %s\r\nSTAT\r\nQUIT\r\n"
                   % hashlib.md5(b"<123.456.1@pop.example>secret").hexdigest(),
        "stls": "CAPA\r\nSTLS\r\nUSER alice\r\nPASS secret\r\nQUIT\r\n",
        "many": "USER carol\r\nPASS pw\r\n" + "".join("RETR %d\r\nDELE %d\r\n" % (i, i) for i in range(1, 41)) + "QUIT\r\n",
        "bad": "USER\r\nPASS x\r\nUSER bob\r\nPASS nope\r\nAUTH PLAIN\r\nRETR 1\r\n" + "X" * 600 + "\r\nQUIT\r\n",
        "bare-lf": "user alice\npass secret\nuidl\nlist 99999999999\ntop 1 -1\nquit\n",
    }
    for name, s in scripts.items():
        for a in (0, 1):
            put("pop3_session", "%s-%d" % (name, a), bytes([a, 0x14]) + s.encode())


def replies():
    for name, r in {
        "ehlo": b"250-mx.example.org Hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n"
                b"250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n",
        "greeting": b"220 mx.example.org ESMTP\r\n",
        "pipelined": b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <x@y>: no such user\r\n354 go\r\n",
        "multi-error": b"451-4.3.0 try\n451 4.3.0 later\n",
        "mixed-codes": b"250-a\r\n251 b\r\n",
        "bad": b"25O oops\r\n",
    }.items():
        put("smtp_reply", name, b"\x05" + r)


def mime():
    for i, v in enumerate(["=?ISO-2022-JP?B?GyRCJEYkOSRIGyhC?=", "=?UTF-8?Q?caf=C3=A9?= =?UTF-8?B?w6k=?=",
                           "=?shift_jis?B?g2WDWINn?=", "plain ascii", "=?utf-8*en?q?a_b?=",
                           "\x1b$B$F$9$H\x1b(B raw", "\xe3\x83\x86raw utf-8", "\x83e\x83X\x83g sjis",
                           "=?x-unknown?B?AAEC?=", "=?UTF-8?B?broken", "a =?UTF-8?Q?=0D=0AX-Bcc:_y?= b"]):
        for cs in (0, 1, 2):
            put("header_codec", "%d-%d" % (i, cs), bytes([cs, 9]) + v.encode("latin-1"))
    msgs = {
        "simple": "From: Alice <alice@example.org>\r\nTo: wiz@example.org\r\nSubject: hello\r\n"
                  "X-Mailer: x\r\nReturn-Path: <a@b>\r\n\r\nbody\r\n",
        "folded": "Subject: =?ISO-2022-JP?B?GyRCJEYkOSRIGyhC?=\r\n =?ISO-2022-JP?B?GyRCJEYkOSRIGyhC?=\r\n"
                  "From: a@b (c)\nList-Id: <wiz.example.org>\n\nbody\n",
        "no-body": "Subject: [wiz-list0012] again\r\nX-A: 1\r\n",
        "junk": " leading continuation\r\nnot a field\r\n\r\n",
        "inject": "Subject: =?UTF-8?Q?a=0D=0ABcc:_victim@x?=\r\n\r\nx\r\n",
    }
    for name, m in msgs.items():
        for pol in (0x00, 0x13, 0x26):
            put("message_head", "%s-%x" % (name, pol), bytes([pol, 12]) + m.encode("latin-1"))


def dkim():
    msgs = {
        "crlf": "From: Alice <alice@example.org>\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nbody\r\n.dot\r\n",
        "lf": "From: a@example.org\nSubject: folded\n  over two lines\nList-Id: <l.example.org>\n\nbody\n\n\n",
        "no-body": "From: a@example.org\r\nSubject: x",
        "junk": " leading continuation\r\nnot a field\r\n\r\n",
        "bare-cr": "From: a@example.org\rX: y\r\nSubject: a\rb\r\n\r\nline\rline\n\r\n",
        "signed": "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=fuzz.example; s=f; h=from;"
                  " bh=AAAA; b=AAAA\r\nFrom: a@fuzz.example\r\n\r\nbody\r\n",
        "garbled-sig": "DKIM-Signature: v=1; a=rsa-sha256; d=\r\nFrom: a@example.org\r\n\r\nx\r\n",
        "8bit": "From: =?UTF-8?B?w6k=?= <a@example.org>\r\nSubject: caf\xc3\xa9\r\n\r\n\xff\xfe\r\n",
    }
    for name, m in msgs.items():
        put("dkim_message", name, m.encode("latin-1"))


def milter():
    def pkt(code, data=b""):
        return struct.pack(">I", len(data) + 1) + code + data
    optneg = pkt(b"O", struct.pack(">III", 6, 0x1FF, 0x1FFFFF & ~0x800))
    seeds = {
        "continue": optneg + pkt(b"c") * 3,
        "eom-changes": pkt(b"h", b"X-A\0v\0") + pkt(b"m", b"\0\0\0\1Subject\0\0") + pkt(b"i", b"\0\0\0\0X\0y\0")
                       + pkt(b"e", b"<a@b>\0SIZE=1\0") + pkt(b"+", b"<c@d>\0") + pkt(b"-", b"<c@d>\0")
                       + pkt(b"2", b"<e@f>\0NOTIFY=NEVER\0") + pkt(b"b", b"new body\r\n") + pkt(b"q", b"why\0")
                       + pkt(b"p") + pkt(b"a"),
        "replycode": pkt(b"y", b"550-5.7.1 a\r\n550 5.7.1 b\0") + pkt(b"y", b"250 ok\0"),
        "symlist": pkt(b"O", struct.pack(">III", 6, 0, 0) + struct.pack(">I", 2) + b"{mail_addr} i\0"),
        "bad-length": b"\0\0\0\0c" + pkt(b"c"),
        "huge-length": b"\x7f\xff\xff\xffc",
        "message": b"Received: from a\r\n\tby b\r\nSubject: x\r\n\r\nbody\r\n",
    }
    for name, data in seeds.items():
        put("milter_reply", name, b"\x07" + data)


def proxy():
    import socket as so
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    four = so.inet_aton("192.0.2.7") + so.inet_aton("198.51.100.1") + struct.pack(">HH", 40000, 25)
    six = so.inet_pton(so.AF_INET6, "2001:db8::7") + so.inet_pton(so.AF_INET6, "2001:db8::1") + struct.pack(">HH", 1, 2)
    tlvs = b"\x01" + struct.pack(">H", 4) + b"smtp" + b"\x04" + struct.pack(">H", 2) + b"\0\0"
    full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    seeds = {
        "v1-tcp4": b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\nEHLO x\r\n",
        "v1-tcp6": b"PROXY TCP6 2001:db8::7 2001:db8::1 1 2\r\n",
        "v1-unknown": b"PROXY UNKNOWN\r\n",
        "v1-longest": ("PROXY UNKNOWN %s %s 65535 65535\r\n" % (full, full)).encode(),
        "v1-bad-zero": b"PROXY TCP4 192.0.2.07 198.51.100.1 1 2\r\n",
        "v2-tcp4": sig + b"\x21\x11" + struct.pack(">H", len(four)) + four + b"EHLO x\r\n",
        "v2-tcp6-tlvs": sig + b"\x21\x21" + struct.pack(">H", len(six + tlvs)) + six + tlvs,
        "v2-local": sig + b"\x20\x00\x00\x00",
        "v2-unix": sig + b"\x21\x31" + struct.pack(">H", 216) + bytes(216),
        "v2-udp": sig + b"\x21\x12" + struct.pack(">H", len(four)) + four,
        "v2-too-long": sig + b"\x21\x11\xff\xff",
        "not-proxy": b"EHLO client.example\r\n",
    }
    for name, data in seeds.items():
        put("proxy_header", name, b"\x05" + data)


def config(build):
    home = tempfile.mkdtemp()
    wizmail = os.path.join(build, "apps", "wizmail", "wizmail")
    subprocess.run([wizmail, "--home", home, "setup", "--password", "x"], check=True,
                   stdout=subprocess.DEVNULL)
    texts = []
    for f in ("smtpenv.dat", "popenv.dat", "wiz98msenv.dat"):
        with open(os.path.join(home, "def", f), "rb") as fh:
            texts.append(fh.read())
    subprocess.run(["rm", "-rf", home], check=True)
    put("def_file", "setup", b"\x00" + b"\x1e".join(texts) + b"\x1emailbox_capacity_mail_count=10\n")
    put("def_file", "small", b"\x00port=2525\r\nrelay=1\nbind_address=127.0.0.1,::1\n# c\n// c\n\x1e\x1e"
        b"domain=example.org\nalias=a.example, b.example\n\x1e")
    put("def_file", "errors", b"\x00prot=25\nport=99999\nrelay=yes\nno equals\n\xff\n=x\n\x1e\x1e\x1e")
    for i, (k, v) in enumerate([(0, b"25"), (3, b"1"), (10, b"a.example,b.example"), (20, b"10M"),
                               (30, b"192.0.2.0/24, ::1"), (40, b"/var/mail")]):
        put("def_file", "value-%d" % i, bytes([1, k]) + v)
    put("ml_def", "plain", "count=12\nadmin_mail_address=admin@example.org\nreturn_path=\nname=wiz-list\n")
    put("ml_def", "bom-crlf", "\ufeffcount=0\r\n# comment\r\nname=ウィズ\r\n")
    put("ml_def", "bad", "count=-1\ncount=2\nfoo=bar\n")
    put("exec_def", "full", "bin=/usr/bin/logger -t \"wiz mail\"\nparam1=FROM_ADDRESS\nparam2=SUBJECT\n"
        "permission_mailaddress=a@example.org, Example.NET\nstdin=1\n")
    put("exec_def", "comments", "# x\r\n// y\r\nbin=\"/opt/my app/run\" MAILFILE_PATH\r\nparam1=TO_ADDRESS\r\n")
    put("exec_def", "bad", "bin=\"unterminated\nparam0=x\nparam100=y\nstdin=2\n")


def control():
    for name, j in {
        "request": '{"v":1,"cmd":"stop","force":true}',
        "sessions": '{"v":1,"ok":true,"sessions":[{"id":"s1","protocol":"smtp","peer":"192.0.2.1",'
                    '"account":"alice","state":"data","age":3725,"command":"DATA"}],'
                    '"workers":[{"name":"queue","state":"idle","age":12}]}',
        "escapes": '["\\u00e9\\ud83d\\ude00\\n\\"", -0.0, 1e308, 12.5e-3, null, false, {}]',
        "error": '{"v":1,"ok":false,"error":"bad_request","message":"unknown command"}',
    }.items():
        put("control_json", name, j)


def queue():
    entry = ("wizmail-queue 1\nid 1700000000.123.host\ncreated 1700000000\nnext 1700000600\nsize 512\n"
             "sender a%40b@example.org\nclient 192.0.2.7\nauth alice\n"
             "rcpt pending 0 bob@remote.example \nrcpt failed 3 c@x.example 550%205.1.1%20no%20such%20user\n"
             "attempt 1700000300 mx.x.example:%20451%204.3.0%20later\nend\n")
    put("queue_entry", "full", entry)
    put("queue_entry", "null-sender", entry.replace("sender a%40b@example.org", "sender "))
    put("queue_entry", "truncated", entry[:-4])


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def journal():
    """Records as store/journal_record.hpp lays them out (little endian)."""
    def record(seq, name, dirs, data):
        payload = name
        for d in dirs:
            payload += struct.pack("<I", len(d)) + d
        payload += data
        length = (40 + len(payload) + 7) & ~7
        payload += b"\0" * (length - 40 - len(payload))
        rest = struct.pack("<QQIIQ", seq, length, len(name), len(dirs), len(data))
        crc = crc32c(rest, crc32c(payload))
        return struct.pack("<II", 0x52434A57, crc) + rest + payload
    put("journal_record", "one", b"\x00\x00" + record(1, b"1700000000.M1P2.host", [b"/home/wiz/mailbox/alice"],
                                                     b"Subject: x\r\n\r\nhello\r\n"))
    put("journal_record", "two-dirs", b"\x01\x06" + record(7, b"n", [b"/a", b"/b"], b"") + b"\xff" * 16)
    put("journal_record", "dotname", b"\x01\x00" + record(1, b"../x", [], b"data"))


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")
    smtp()
    pop3()
    replies()
    mime()
    dkim()
    milter()
    proxy()
    config(build)
    control()
    queue()
    journal()


if __name__ == "__main__":
    main()
