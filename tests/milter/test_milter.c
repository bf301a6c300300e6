/* A milter for the tests, written with Debian's libmilter (the reference
 * implementation of the milter side): told on its command line which action
 * to take at which stage, it records what it saw in a log file.
 *
 *   test_milter -p inet:PORT@127.0.0.1 -l LOG [-a DIRECTIVE]...
 *
 * DIRECTIVE is STAGE[/MATCH]=ACTION:
 *   STAGE   connect helo mail rcpt data header eoh body eom
 *   MATCH   a substring the stage's argument must contain (the HELO name,
 *           sender, recipient, "Name: value" of a header), else the
 *           directive is skipped
 *   ACTION  continue accept reject tempfail discard
 *           reply:CODE:XCODE:TEXT   (smfi_setreply)
 *           sleep:SECONDS           (then continue)
 *           exit                    (the process ends at once: a milter
 *                                    killed mid-session)
 *           at eom also the changes, done in order, then continue:
 *           addheader:NAME:VALUE  chgheader:NAME:INDEX:VALUE
 *           insheader:INDEX:NAME:VALUE  chgfrom:ADDR  addrcpt:ADDR
 *           addrcpt_par:ADDR:ARGS  delrcpt:ADDR  replbody:TEXT
 *           quarantine:REASON  progress:COUNT
 * The first directive whose stage and match fit decides a stage's answer
 * (changes at eom all apply). The log gets one line per event with the
 * macros the MTA sent, e.g. "mail <a@b> {mail_addr}=a@b i=...".
 */
#include <libmilter/mfapi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXD 64
static const char* directives[MAXD];
static int ndirectives;
static FILE* logf;

static void logline(SMFICTX* ctx, const char* stage, const char* arg) {
  static const char* macros[] = {"j", "{daemon_name}", "{client_addr}", "{client_name}", "{auth_authen}",
                                 "i", "{mail_addr}", "{rcpt_addr}", "_", "{tls_version}", "{cipher}",
                                 "{cipher_bits}", "{client_ptr}", NULL};
  fprintf(logf, "%s %s", stage, arg ? arg : "");
  for (int i = 0; macros[i]; ++i) {
    char* v = smfi_getsymval(ctx, (char*)macros[i]);
    if (v) fprintf(logf, " %s=%s", macros[i], v);
  }
  fputc('\n', logf);
  fflush(logf);
}

/* The action part of the first directive for `stage` whose match fits
 * `arg`, starting at index *from (advanced past it); NULL when none. */
static const char* next_action(const char* stage, const char* arg, int* from) {
  size_t sl = strlen(stage);
  for (int i = *from; i < ndirectives; ++i) {
    const char* d = directives[i];
    if (strncmp(d, stage, sl) != 0 || (d[sl] != '=' && d[sl] != '/')) continue;
    const char* eq = strchr(d, '=');
    if (!eq) continue;
    if (d[sl] == '/') {
      char match[256];
      size_t n = (size_t)(eq - d - (long)sl - 1);
      if (n >= sizeof match) continue;
      memcpy(match, d + sl + 1, n);
      match[n] = 0;
      if (!arg || !strstr(arg, match)) continue;
    }
    *from = i + 1;
    return eq + 1;
  }
  *from = ndirectives;
  return NULL;
}

static sfsistat simple(SMFICTX* ctx, const char* a) {
  if (!strcmp(a, "accept")) return SMFIS_ACCEPT;
  if (!strcmp(a, "reject")) return SMFIS_REJECT;
  if (!strcmp(a, "tempfail")) return SMFIS_TEMPFAIL;
  if (!strcmp(a, "discard")) return SMFIS_DISCARD;
  if (!strcmp(a, "exit")) _exit(3);
  if (!strncmp(a, "sleep:", 6)) {
    sleep((unsigned)atoi(a + 6));
    return SMFIS_CONTINUE;
  }
  if (!strncmp(a, "mlreply:", 8)) {  /* mlreply:CODE:XCODE:line1|line2[|line3] */
    char buf[512];
    snprintf(buf, sizeof buf, "%s", a + 8);
    char* l[3] = {NULL, NULL, NULL};
    char* code = buf;
    char* x = strchr(code, ':');
    if (!x) return SMFIS_TEMPFAIL;
    *x++ = 0;
    char* text = strchr(x, ':');
    if (!text) return SMFIS_TEMPFAIL;
    *text++ = 0;
    for (int i = 0; i < 3 && text; ++i) {
      l[i] = text;
      text = strchr(text, '|');
      if (text) *text++ = 0;
    }
    smfi_setmlreply(ctx, code, x, l[0], l[1], l[2], NULL);
    return code[0] == '4' ? SMFIS_TEMPFAIL : SMFIS_REJECT;
  }
  if (!strncmp(a, "reply:", 6)) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", a + 6);
    char* code = buf;
    char* x = strchr(code, ':');
    if (!x) return SMFIS_TEMPFAIL;
    *x++ = 0;
    char* text = strchr(x, ':');
    if (!text) return SMFIS_TEMPFAIL;
    *text++ = 0;
    smfi_setreply(ctx, code, x, text);
    return code[0] == '4' ? SMFIS_TEMPFAIL : SMFIS_REJECT;
  }
  return SMFIS_CONTINUE;
}

static sfsistat stage_action(SMFICTX* ctx, const char* stage, const char* arg) {
  logline(ctx, stage, arg);
  int from = 0;
  const char* a = next_action(stage, arg, &from);
  return a ? simple(ctx, a) : SMFIS_CONTINUE;
}

static sfsistat on_connect(SMFICTX* ctx, char* host, _SOCK_ADDR* sa) {
  (void)sa;
  return stage_action(ctx, "connect", host);
}
static sfsistat on_helo(SMFICTX* ctx, char* name) { return stage_action(ctx, "helo", name); }
static sfsistat on_mail(SMFICTX* ctx, char** argv) { return stage_action(ctx, "mail", argv[0]); }
static sfsistat on_rcpt(SMFICTX* ctx, char** argv) { return stage_action(ctx, "rcpt", argv[0]); }
static sfsistat on_data(SMFICTX* ctx) { return stage_action(ctx, "data", NULL); }
static sfsistat on_header(SMFICTX* ctx, char* name, char* value) {
  char buf[2048];
  snprintf(buf, sizeof buf, "%s: %s", name, value);
  for (char* p = buf; *p; ++p)
    if (*p == '\r' || *p == '\n') *p = ' ';
  return stage_action(ctx, "header", buf);
}
static sfsistat on_eoh(SMFICTX* ctx) { return stage_action(ctx, "eoh", NULL); }
static sfsistat on_body(SMFICTX* ctx, unsigned char* b, size_t n) {
  char buf[64];
  snprintf(buf, sizeof buf, "%zu", n);
  (void)b;
  return stage_action(ctx, "body", buf);
}

/* "a:b:c" → up to 4 fields (the last one keeps its colons). */
static int fields(char* s, char** out, int max) {
  int n = 0;
  out[n++] = s;
  while (n < max) {
    char* c = strchr(out[n - 1], ':');
    if (!c) break;
    *c = 0;
    out[n++] = c + 1;
  }
  return n;
}

static sfsistat on_eom(SMFICTX* ctx) {
  logline(ctx, "eom", NULL);
  int from = 0;
  const char* a;
  while ((a = next_action("eom", NULL, &from)) != NULL) {
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", a);
    char* f[5];
    int ok = MI_SUCCESS;
    if (!strncmp(buf, "addheader:", 10)) {
      int n = fields(buf + 10, f, 2);
      ok = n == 2 ? smfi_addheader(ctx, f[0], f[1]) : MI_FAILURE;
    } else if (!strncmp(buf, "chgheader:", 10)) {
      int n = fields(buf + 10, f, 3);
      ok = n == 3 ? smfi_chgheader(ctx, f[0], atoi(f[1]), f[2][0] ? f[2] : NULL) : MI_FAILURE;
    } else if (!strncmp(buf, "insheader:", 10)) {
      int n = fields(buf + 10, f, 3);
      ok = n == 3 ? smfi_insheader(ctx, atoi(f[0]), f[1], f[2]) : MI_FAILURE;
    } else if (!strncmp(buf, "chgfrom:", 8)) {
      ok = smfi_chgfrom(ctx, buf + 8, NULL);
    } else if (!strncmp(buf, "addrcpt:", 8)) {
      ok = smfi_addrcpt(ctx, buf + 8);
    } else if (!strncmp(buf, "addrcpt_par:", 12)) {
      int n = fields(buf + 12, f, 2);
      ok = smfi_addrcpt_par(ctx, f[0], n == 2 ? f[1] : NULL);
    } else if (!strncmp(buf, "delrcpt:", 8)) {
      ok = smfi_delrcpt(ctx, buf + 8);
    } else if (!strncmp(buf, "replbody:", 9)) {
      ok = smfi_replacebody(ctx, (unsigned char*)buf + 9, (int)strlen(buf + 9));
    } else if (!strncmp(buf, "quarantine:", 11)) {
      ok = smfi_quarantine(ctx, buf + 11);
    } else if (!strncmp(buf, "progress:", 9)) {
      for (int i = atoi(buf + 9); i > 0; --i) {
        smfi_progress(ctx);
        usleep(300000);
      }
    } else {
      return simple(ctx, buf);
    }
    if (ok != MI_SUCCESS) {
      fprintf(logf, "eom change failed: %s\n", buf);
      fflush(logf);
    }
  }
  return SMFIS_CONTINUE;
}

static sfsistat on_abort(SMFICTX* ctx) {
  fprintf(logf, "abort\n");
  fflush(logf);
  (void)ctx;
  return SMFIS_CONTINUE;
}
static sfsistat on_close(SMFICTX* ctx) {
  fprintf(logf, "close\n");
  fflush(logf);
  (void)ctx;
  return SMFIS_CONTINUE;
}
static sfsistat on_unknown(SMFICTX* ctx, const char* cmd) { return stage_action(ctx, "unknown", cmd); }

int main(int argc, char** argv) {
  const char* sock = NULL;
  const char* logpath = NULL;
  int c;
  while ((c = getopt(argc, argv, "p:l:a:")) != -1) {
    switch (c) {
      case 'p': sock = optarg; break;
      case 'l': logpath = optarg; break;
      case 'a':
        if (ndirectives < MAXD) directives[ndirectives++] = optarg;
        break;
      default: return 2;
    }
  }
  if (!sock || !logpath) {
    fprintf(stderr, "usage: test_milter -p SOCKET -l LOG [-a STAGE[/MATCH]=ACTION]...\n");
    return 2;
  }
  logf = fopen(logpath, "a");
  if (!logf) return 2;
  struct smfiDesc desc = {
      "wizmail-test", SMFI_VERSION,
      SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_ADDRCPT | SMFIF_ADDRCPT_PAR | SMFIF_DELRCPT |
          SMFIF_QUARANTINE | SMFIF_CHGFROM,
      on_connect, on_helo, on_mail, on_rcpt, on_header, on_eoh, on_body, on_eom, on_abort, on_close,
      on_unknown, on_data, NULL};
  if (smfi_setconn((char*)sock) == MI_FAILURE || smfi_register(desc) == MI_FAILURE) return 1;
  if (smfi_opensocket(1) == MI_FAILURE) return 1;
  fprintf(logf, "ready\n");
  fflush(logf);
  return smfi_main() == MI_SUCCESS ? 0 : 1;
}
