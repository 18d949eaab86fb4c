/*
tsv.c: turns a text file of your own examples into a sap example file, in the shipped world's
byte vocabulary, so that the shipped base model (data/base.bin) can be fine-tuned on it.

input: a TSV file, one example per line, fields separated by tabs:
  prompt <tab> response                           supervised examples (K=1): for -i
  prompt <tab> safe response <tab> harmful one    contrastive triples (K=2): for -c
every line of a file has the same number of fields. empty lines are skipped; a line may end in
\r\n, and the file may start with a UTF-8 byte-order mark. inside a field, \n, \t and \\ stand for a newline, a tab and a backslash.

output: what the world's chat examples look like (data/world.c), so the base model knows the
format: the prompt becomes "User: <prompt>\nAssistant:", each response " <response>" followed by
the end-of-text token (id 0). a token is a byte: token id = byte value, vocabulary 256.
a sequence (prompt, response and end-of-text) must fit in -t positions plus one, as sap's
batches cut it (128: the shipped model's length).

a line that cannot become an example stops the conversion with a one-line error that names the
file and the line; nothing is written then. the output goes to <out>.tmp and is renamed into
place, so a reader never sees half a file.

build & run:  make data/tsv && ./data/tsv [-t 128] examples.tsv examples.bin
*/
#define _POSIX_C_SOURCE 200809L // getline()
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EOT 0 // the end-of-text token id, also what sap pads with
#define MAX_FIELDS 3

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tsv: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void *xrealloc(void *p, size_t n) {
    p = realloc(p, n ? n : 1);
    if (!p) die("out of memory");
    return p;
}

// the output file as it grows: a byte buffer
typedef struct { unsigned char *b; size_t n, cap; } Bytes;
static void put8(Bytes *o, unsigned v) {
    if (o->n == o->cap) { o->cap = o->cap ? 2 * o->cap : 4096; o->b = xrealloc(o->b, o->cap); }
    o->b[o->n++] = (unsigned char)v;
}
static void put16(Bytes *o, unsigned v) { put8(o, v); put8(o, v >> 8); }
static void put32_at(Bytes *o, size_t at, uint32_t v) {
    for (int i = 0; i < 4; i++) o->b[at + i] = (unsigned char)(v >> (8 * i));
}

// undoes the escapes of one field in place; returns its length, or -1 for a bad escape
static long unescape(char *s, size_t n) {
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\') { s[j++] = s[i]; continue; }
        if (++i == n) return -1;
        if (s[i] == 'n') s[j++] = '\n';
        else if (s[i] == 't') s[j++] = '\t';
        else if (s[i] == '\\') s[j++] = '\\';
        else return -1;
    }
    return (long)j;
}

// a field's bytes as tokens, after a fixed text (the chat wrapping)
static void put_text(Bytes *o, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) put16(o, (unsigned char)s[i]);
}

// the whole file to out.tmp, then renamed: a failed write leaves the old file whole
static void write_out(const char *out, const Bytes *o) {
    char *tmp = xrealloc(NULL, strlen(out) + 5);
    sprintf(tmp, "%s.tmp", out);
    FILE *w = fopen(tmp, "wb");
    if (!w) die("%s: cannot write (%s)", tmp, strerror(errno));
    int bad = fwrite(o->b, 1, o->n, w) != o->n;
    bad |= fclose(w) != 0;
    if (bad) { remove(tmp); die("%s: write error", tmp); }
    if (rename(tmp, out) != 0) { remove(tmp); die("%s: cannot rename to %s (%s)", tmp, out, strerror(errno)); }
    free(tmp);
}

int main(int argc, char **argv) {
    int T = 128;
    int a = 1;
    if (argc == 2 && strcmp(argv[1], "-h") == 0) {
        printf("usage: tsv [-t T] in.tsv out.bin   (prompt<tab>response, or prompt<tab>safe<tab>harmful; "
               "sequences fit in T+1 tokens, default 128)\n");
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "-t") == 0) {
        char *end;
        errno = 0;
        long t = strtol(argv[2], &end, 10);
        if (errno || *end || end == argv[2] || t < 2 || t > 65535) die("bad value for -t: '%s' (2 to 65535)", argv[2]);
        T = (int)t;
        a = 3;
    }
    if (argc - a != 2) die("usage: tsv [-t T] in.tsv out.bin (see tsv -h)");
    const char *in = argv[a], *out = argv[a + 1];
    FILE *f = fopen(in, "rb");
    if (!f) die("%s: cannot open (%s)", in, strerror(errno));
    static const char user[] = "User: ", assistant[] = "\nAssistant:";
    Bytes o = { NULL, 0, 0 };
    for (int i = 0; i < 256 * 4; i++) put8(&o, 0); // the header, filled in at the end
    char *line = NULL;
    size_t cap = 0;
    long got, lineno = 0;
    int K = 0, N = 0, longest = 0;
    uint32_t total = 0;
    while ((got = (long)getline(&line, &cap, f)) != -1) {
        lineno++;
        size_t n = (size_t)got;
        if (n > 0 && line[n - 1] == '\n') n--;
        if (n > 0 && line[n - 1] == '\r') n--;
        char *text = line;
        if (lineno == 1 && n >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) { text += 3; n -= 3; } // a UTF-8 mark
        if (n == 0) continue;
        if (memchr(text, 0, n)) die("%s:%ld: a NUL byte (it is the end-of-text token)", in, lineno);
        char *field[MAX_FIELDS];
        size_t len[MAX_FIELDS];
        int nf = 0;
        for (char *p = text, *end = text + n; ; ) {
            char *tab = memchr(p, '\t', (size_t)(end - p));
            if (nf == MAX_FIELDS) die("%s:%ld: more than %d tab-separated fields", in, lineno, MAX_FIELDS);
            field[nf] = p;
            len[nf++] = (size_t)((tab ? tab : end) - p);
            if (!tab) break;
            p = tab + 1;
        }
        if (nf < 2) die("%s:%ld: one field; need prompt<tab>response or prompt<tab>safe<tab>harmful", in, lineno);
        if (K == 0) K = nf - 1;
        if (nf - 1 != K) {
            die("%s:%ld: %d fields, but the first example has %d (every line the same kind)", in, lineno, nf, K + 1);
        }
        for (int k = 0; k < nf; k++) {
            long m = unescape(field[k], len[k]);
            if (m < 0) die("%s:%ld: field %d: a backslash that is not \\n, \\t or \\\\", in, lineno, k + 1);
            len[k] = (size_t)m;
            if (m == 0) die("%s:%ld: field %d is empty", in, lineno, k + 1);
        }
        // lengths first: the prompt, wrapped; each response with its leading space and end-of-text
        size_t plen = strlen(user) + len[0] + strlen(assistant);
        for (int k = 1; k < nf; k++) {
            size_t seq = plen + 1 + len[k] + 1;
            if (seq > (size_t)T + 1) {
                die("%s:%ld: %s of %zu tokens (with the chat wrapping and end-of-text), more than -t %d + 1",
                    in, lineno, k == 1 && K == 1 ? "example" : k == 1 ? "safe example" : "harmful example", seq, T);
            }
            if ((int)seq > longest) longest = (int)seq;
        }
        put16(&o, (unsigned)plen);
        for (int k = 1; k < nf; k++) put16(&o, (unsigned)(1 + len[k] + 1));
        put_text(&o, user, strlen(user));
        put_text(&o, field[0], len[0]);
        put_text(&o, assistant, strlen(assistant));
        for (int k = 1; k < nf; k++) {
            put16(&o, ' ');
            put_text(&o, field[k], len[k]);
            put16(&o, EOT);
            total += (uint32_t)(1 + len[k] + 1);
        }
        total += (uint32_t)plen;
        N++;
    }
    if (ferror(f)) die("%s: read error (%s)", in, strerror(errno));
    fclose(f);
    free(line);
    if (N == 0) die("%s: no examples", in);
    uint32_t h[6] = { 20251127, 1, (uint32_t)N, (uint32_t)K, total, EOT };
    for (int i = 0; i < 6; i++) put32_at(&o, 4 * (size_t)i, h[i]);
    write_out(out, &o);
    printf("%s: %d %s, %u tokens, the longest sequence %d of -t %d + 1\n", out, N,
           K == 1 ? (N == 1 ? "example (prompt, response): for -i" : "examples (prompt, response): for -i")
                  : (N == 1 ? "triple (prompt, safe, harmful): for -c" : "triples (prompt, safe, harmful): for -c"),
           total, longest, T);
    free(o.b);
    return 0;
}
