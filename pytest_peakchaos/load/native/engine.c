/* peakchaos native engine: the load engine's hot path outside CPython's interpreter.
 *
 * The same engine as pytest_peakchaos/load/engine.py (read its docstring first), for the profiles
 * whose requests it can render (pytest_peakchaos/load/native.py decides and says why not):
 *
 *  - sessions arrive at the instants the Python side computed (the same seeded arrival process);
 *  - each session walks the same seeded path: CPython's Mersenne Twister, seeded exactly as
 *    random.Random(int.from_bytes(blake2b(f"{seed}:session:{index}:path", digest_size=8), "big"))
 *    is, and the planner's tables (CompiledPlan) given as numbers, so plan_sessions() shows what
 *    this engine sends too;
 *  - closed loop inside a session, latency from the *intended* send instant, patience (refresh or
 *    abandon, its own "impatience" stream), a keep-alive pool of at most `connections`
 *    connections with FIFO waiters, per-request deadlines;
 *  - the generator's own health per second (loop lag of a 5 ms ticker with the missed-tick
 *    correction, send delay, connection waits, CPU share);
 *  - everything recorded as the Python engine records it (fine log buckets, per-second coarse
 *    buckets, error kinds, acknowledged orders) and written to a results file the Python side
 *    turns into a LoadResult.
 *
 * Protocol (pytest_peakchaos/load/native.py): argv = [binary, config file, results file]. The
 * engine reads the config, prints "ready", reads "t0 <monotonic seconds>" from stdin, runs, prints
 * "live <completed> <ok> <active>" every 250 ms, writes the results file and prints "done". A
 * "stop" line, the end of stdin, SIGINT or SIGTERM stop it like a stop_event (0.5 s drain).
 * Bounded: no request after `duration` or past `max_requests`, a hard end at duration + timeout + 1 s.
 * Traffic goes only to the IPv4 address it is given (the Python side allows loopback only).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXFI 24000   /* fine buckets: log(3.6e9 us) / log(1.001) ~ 21,950 */
#define MAXCI 602     /* coarse buckets: (MAXFI + 39) / 40 */
#define NCLS 6
#define TICK_S 0.005
#define HOUSE_S 0.25
#define EARLY_S 0.0005
#define MAX_RESPONSE (64u * 1024u * 1024u)

static void die(const char *what) { fprintf(stderr, "peakchaos-engine: %s\n", what); exit(2); }
static void *xmalloc(size_t n) { void *p = malloc(n ? n : 1); if (!p) die("out of memory"); return p; }
static void *xcalloc(size_t n, size_t s) { void *p = calloc(n ? n : 1, s ? s : 1); if (!p) die("out of memory"); return p; }
static void *xrealloc(void *p, size_t n) { p = realloc(p, n ? n : 1); if (!p) die("out of memory"); return p; }

static inline double mono(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
static inline double thread_cpu(void) {
    struct timespec ts; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------------------------------------
 * BLAKE2b (RFC 7693), unkeyed, any digest length: the session seeds. */
static const uint64_t B2_IV[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL};
static const uint8_t B2_SIGMA[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4}, {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13}, {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11}, {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5}, {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3}};
static inline uint64_t rotr64(uint64_t x, int n) { return (x >> n) | (x << (64 - n)); }
static void b2_compress(uint64_t h[8], const uint8_t blk[128], uint64_t t, int last) {
    uint64_t v[16], m[16];
    for (int i = 0; i < 16; i++) {
        uint64_t w = 0;
        for (int k = 7; k >= 0; k--) w = (w << 8) | blk[i * 8 + k];
        m[i] = w;
    }
    for (int i = 0; i < 8; i++) { v[i] = h[i]; v[i + 8] = B2_IV[i]; }
    v[12] ^= t;
    if (last) v[14] = ~v[14];
#define B2G(a, b, c, d, x, y)                                   \
    do {                                                        \
        v[a] = v[a] + v[b] + (x); v[d] = rotr64(v[d] ^ v[a], 32); \
        v[c] = v[c] + v[d]; v[b] = rotr64(v[b] ^ v[c], 24);       \
        v[a] = v[a] + v[b] + (y); v[d] = rotr64(v[d] ^ v[a], 16); \
        v[c] = v[c] + v[d]; v[b] = rotr64(v[b] ^ v[c], 63);       \
    } while (0)
    for (int r = 0; r < 12; r++) {
        const uint8_t *s = B2_SIGMA[r];
        B2G(0, 4, 8, 12, m[s[0]], m[s[1]]); B2G(1, 5, 9, 13, m[s[2]], m[s[3]]);
        B2G(2, 6, 10, 14, m[s[4]], m[s[5]]); B2G(3, 7, 11, 15, m[s[6]], m[s[7]]);
        B2G(0, 5, 10, 15, m[s[8]], m[s[9]]); B2G(1, 6, 11, 12, m[s[10]], m[s[11]]);
        B2G(2, 7, 8, 13, m[s[12]], m[s[13]]); B2G(3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for (int i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
}
/* int.from_bytes(blake2b(msg, digest_size=8).digest(), "big") */
static uint64_t blake2b64(const uint8_t *msg, size_t len) {
    uint64_t h[8];
    for (int i = 0; i < 8; i++) h[i] = B2_IV[i];
    h[0] ^= 0x01010000ULL ^ 8ULL;
    uint8_t blk[128];
    size_t off = 0;
    while (len - off > 128) {
        memcpy(blk, msg + off, 128);
        off += 128;
        b2_compress(h, blk, (uint64_t)off, 0);
    }
    memset(blk, 0, 128);
    memcpy(blk, msg + off, len - off);
    b2_compress(h, blk, (uint64_t)len, 1);
    uint64_t out = 0;
    for (int i = 0; i < 8; i++) out = (out << 8) | (uint8_t)(h[0] >> (8 * i));
    return out;
}

/* ---------------------------------------------------------------------------------------------
 * CPython's random.Random: MT19937, seeded from an int by init_by_array on its 32-bit words. */
#define MT_N 624
#define MT_M 397
typedef struct { uint32_t mt[MT_N]; int mti; } MT;
static void mt_seed64(MT *r, uint64_t n) {
    uint32_t key[2] = {(uint32_t)n, (uint32_t)(n >> 32)};
    int klen = (n >> 32) ? 2 : 1;
    uint32_t *mt = r->mt;
    mt[0] = 19650218U;
    for (int i = 1; i < MT_N; i++) mt[i] = 1812433253U * (mt[i - 1] ^ (mt[i - 1] >> 30)) + (uint32_t)i;
    int i = 1, j = 0;
    for (int k = (MT_N > klen ? MT_N : klen); k; k--) {
        mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1664525U)) + key[j] + (uint32_t)j;
        i++; j++;
        if (i >= MT_N) { mt[0] = mt[MT_N - 1]; i = 1; }
        if (j >= klen) j = 0;
    }
    for (int k = MT_N - 1; k; k--) {
        mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1566083941U)) - (uint32_t)i;
        i++;
        if (i >= MT_N) { mt[0] = mt[MT_N - 1]; i = 1; }
    }
    mt[0] = 0x80000000U;
    r->mti = MT_N;
}
static inline uint32_t mt_u32(MT *r) {
    uint32_t y;
    if (r->mti >= MT_N) {
        uint32_t *mt = r->mt;
        int kk;
        for (kk = 0; kk < MT_N - MT_M; kk++) {
            y = (mt[kk] & 0x80000000U) | (mt[kk + 1] & 0x7fffffffU);
            mt[kk] = mt[kk + MT_M] ^ (y >> 1) ^ ((y & 1U) ? 0x9908b0dfU : 0U);
        }
        for (; kk < MT_N - 1; kk++) {
            y = (mt[kk] & 0x80000000U) | (mt[kk + 1] & 0x7fffffffU);
            mt[kk] = mt[kk + (MT_M - MT_N)] ^ (y >> 1) ^ ((y & 1U) ? 0x9908b0dfU : 0U);
        }
        y = (mt[MT_N - 1] & 0x80000000U) | (mt[0] & 0x7fffffffU);
        mt[MT_N - 1] = mt[MT_M - 1] ^ (y >> 1) ^ ((y & 1U) ? 0x9908b0dfU : 0U);
        r->mti = 0;
    }
    y = r->mt[r->mti++];
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680U;
    y ^= (y << 15) & 0xefc60000U;
    y ^= (y >> 18);
    return y;
}
static inline double mt_random(MT *r) {
    uint32_t a = mt_u32(r) >> 5, b = mt_u32(r) >> 6;
    return ((double)a * 67108864.0 + (double)b) * (1.0 / 9007199254740992.0);
}

/* ---------------------------------------------------------------------------------------------
 * configuration */
enum { D_EXP = 0, D_CONST = 1, D_UNIFORM = 2, D_LOGNORMAL = 3 };
typedef struct { int kind; double mean, low, high, sigma; } Dist;
static double dist_sample(const Dist *d, MT *r) {
    switch (d->kind) {
    case D_EXP: {
        if (d->mean <= 0.0) return 0.0;
        double v = -log(1.0 - mt_random(r)) / (1.0 / d->mean);
        return v < d->high ? v : d->high;
    }
    case D_CONST: return d->mean;
    case D_UNIFORM: return d->low + (d->high - d->low) * mt_random(r);
    default: {
        if (d->mean <= 0.0) return 0.0;
        /* random.lognormvariate(log(mean), sigma) = exp(normalvariate(...)), Kinderman-Monahan */
        const double NV_MAGICCONST = 4 * exp(-0.5) / sqrt(2.0);
        double mu = log(d->mean), z;
        for (;;) {
            double u1 = mt_random(r), u2 = 1.0 - mt_random(r);
            z = NV_MAGICCONST * (u1 - 0.5) / u2;
            double zz = z * z / 4.0;
            if (zz <= -log(u2)) break;
        }
        double v = exp(mu + z * d->sigma);
        return v < d->high ? v : d->high;
    }
    }
}

enum { T_LIT = 0, T_VAR_PATH = 1, T_VAR_PLAIN = 2, T_VAR_JSON = 3, T_CLEN = 4 };
enum { V_SKU = 0, V_PAGE, V_QUERY, V_CART_ID, V_KEY, V_SESSION, V_RUN_ID, V_QTY, V_COUNT };
static const char *VAR_NAMES[V_COUNT] = {"sku", "page", "query", "cart_id", "key", "session", "run_id", "qty"};
typedef struct { int kind, var; char *lit; int len; } Tok;
typedef struct { Tok *t; int n; } Toks;

enum { CART_NONE = 0, CART_ADD = 1, CART_REMOVE = 2, CART_CLEAR = 3 };
enum { DRAW_SKU = -1, DRAW_PAGE = -2, DRAW_QUERY = -3 };
typedef struct {
    int sends, cart_op, keyed, no_body, orders_cart, draws_sku, has_body, cart_track;
    int ndraws, draws[8];
    int nack, ack[16];
    Dist think;
    Toks head, body;
    char *name;
} Action;
typedef struct { int n; int *t; double *c; } Row;
typedef struct { int mode; int n; double *cum; double total; } Picker; /* mode 0 zipf, 1 uniform, 2 sequential */

static struct {
    char *seed_text; int seed_len;
    char *run_id; int run_id_len;
    struct sockaddr_in addr;
    double duration, timeout, think_scale, p_retry;
    long long max_requests;
    int cap, connections, max_actions, max_retries, first_sku, qty, cookies;
    Dist patience;
    int nact;
    Action *act;
    Row rows_full[65], rows_empty[65]; /* index state + 1; 0 = entry */
    int has_row[65];
    Picker products, pages, terms;
    int nterms; char **term_path; int *term_path_len; char **term_plain; int *term_plain_len; char **term_json; int *term_json_len;
    long long narr; long long *arr_gi; double *arr_t;
} C;

static int hexval(int c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }
static char *unhex(const char *s, int *len) {
    size_t n = strlen(s) / 2;
    char *out = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++) out[i] = (char)(hexval(s[2 * i]) << 4 | hexval(s[2 * i + 1]));
    out[n] = 0;
    *len = (int)n;
    return out;
}

/* a whitespace tokenizer over the config text */
static char *cfg_text, *cfg_pos;
static char *next_word(void) {
    char *p = cfg_pos;
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
    if (!*p) return NULL;
    char *w = p;
    while (*p && *p != ' ' && *p != '\n' && *p != '\t' && *p != '\r') p++;
    if (*p) *p++ = 0;
    cfg_pos = p;
    return w;
}
static char *need_word(void) { char *w = next_word(); if (!w) die("config: unexpected end"); return w; }
static long long need_int(void) { return strtoll(need_word(), NULL, 10); }
static double need_f(void) { return strtod(need_word(), NULL); }
static void read_dist(Dist *d) { d->kind = (int)need_int(); d->mean = need_f(); d->low = need_f(); d->high = need_f(); d->sigma = need_f(); }
static void read_toks(Toks *ts) {
    int n = (int)need_int();
    ts->n = n < 0 ? 0 : n;
    ts->t = xcalloc((size_t)ts->n, sizeof(Tok));
    for (int i = 0; i < ts->n; i++) {
        char *w = need_word();
        Tok *t = &ts->t[i];
        if (w[0] == 'L') { t->kind = T_LIT; t->lit = unhex(w + 1, &t->len); }
        else if (w[0] == 'C') t->kind = T_CLEN;
        else {
            t->kind = w[0] == 'P' ? T_VAR_PATH : w[0] == 'H' ? T_VAR_PLAIN : T_VAR_JSON;
            t->var = -1;
            for (int v = 0; v < V_COUNT; v++) if (!strcmp(w + 1, VAR_NAMES[v])) t->var = v;
            if (t->var < 0) die("config: unknown variable");
        }
    }
}
static void read_row(Row *r) {
    r->n = (int)need_int();
    r->t = xmalloc(sizeof(int) * (size_t)r->n);
    r->c = xmalloc(sizeof(double) * (size_t)r->n);
    for (int i = 0; i < r->n; i++) { r->t[i] = (int)need_int(); r->c[i] = need_f(); }
}
static void read_picker(Picker *p) {
    p->mode = (int)need_int();
    p->n = (int)need_int();
    p->cum = NULL;
    if (p->mode == 0) {
        p->cum = xmalloc(sizeof(double) * (size_t)p->n);
        for (int i = 0; i < p->n; i++) p->cum[i] = need_f();
        p->total = p->cum[p->n - 1];
    }
}
static void load_config(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open the config file");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    cfg_text = xmalloc((size_t)n + 1);
    if (fread(cfg_text, 1, (size_t)n, f) != (size_t)n) die("cannot read the config file");
    cfg_text[n] = 0;
    fclose(f);
    cfg_pos = cfg_text;
    memset(&C, 0, sizeof C);
    for (char *w; (w = next_word());) {
        if (!strcmp(w, "seed")) { C.seed_text = unhex(need_word(), &C.seed_len); }
        else if (!strcmp(w, "run_id")) { C.run_id = unhex(need_word(), &C.run_id_len); }
        else if (!strcmp(w, "addr")) {
            C.addr.sin_family = AF_INET;
            if (inet_pton(AF_INET, need_word(), &C.addr.sin_addr) != 1) die("config: bad address");
            C.addr.sin_port = htons((uint16_t)need_int());
        }
        else if (!strcmp(w, "duration")) C.duration = need_f();
        else if (!strcmp(w, "timeout")) C.timeout = need_f();
        else if (!strcmp(w, "max_requests")) C.max_requests = need_int();
        else if (!strcmp(w, "cap")) C.cap = (int)need_int();
        else if (!strcmp(w, "connections")) C.connections = (int)need_int();
        else if (!strcmp(w, "max_actions")) C.max_actions = (int)need_int();
        else if (!strcmp(w, "think_scale")) C.think_scale = need_f();
        else if (!strcmp(w, "patience")) read_dist(&C.patience);
        else if (!strcmp(w, "p_retry")) C.p_retry = need_f();
        else if (!strcmp(w, "max_retries")) C.max_retries = (int)need_int();
        else if (!strcmp(w, "first_sku")) C.first_sku = (int)need_int();
        else if (!strcmp(w, "qty")) C.qty = (int)need_int();
        else if (!strcmp(w, "cookies")) C.cookies = (int)need_int();
        else if (!strcmp(w, "actions")) {
            C.nact = (int)need_int();
            if (C.nact > 64) die("config: at most 64 states");
            C.act = xcalloc((size_t)C.nact, sizeof(Action));
        }
        else if (!strcmp(w, "action")) {
            Action *a = &C.act[need_int()];
            int nl; a->name = unhex(need_word(), &nl);
            a->sends = (int)need_int(); a->cart_op = (int)need_int(); a->keyed = (int)need_int();
            a->no_body = (int)need_int(); a->orders_cart = (int)need_int(); a->draws_sku = (int)need_int();
            a->cart_track = (int)need_int();
            a->ndraws = (int)need_int();
            if (a->ndraws > 8) die("config: too many draws");
            for (int i = 0; i < a->ndraws; i++) a->draws[i] = (int)need_int();
            a->nack = (int)need_int();
            if (a->nack > 16) die("config: too many acknowledge statuses");
            for (int i = 0; i < a->nack; i++) a->ack[i] = (int)need_int();
            read_dist(&a->think);
            read_toks(&a->head);
            a->has_body = (int)need_int();
            read_toks(&a->body);
        }
        else if (!strcmp(w, "row")) {
            int src = (int)need_int();
            int k = src == -2 ? 0 : src + 1;
            C.has_row[k] = 1;
            read_row(&C.rows_full[k]);
            read_row(&C.rows_empty[k]);
        }
        else if (!strcmp(w, "products")) read_picker(&C.products);
        else if (!strcmp(w, "pages")) read_picker(&C.pages);
        else if (!strcmp(w, "terms")) {
            read_picker(&C.terms);
            C.nterms = C.terms.n;
            C.term_path = xcalloc((size_t)C.nterms, sizeof(char *)); C.term_path_len = xcalloc((size_t)C.nterms, sizeof(int));
            C.term_plain = xcalloc((size_t)C.nterms, sizeof(char *)); C.term_plain_len = xcalloc((size_t)C.nterms, sizeof(int));
            C.term_json = xcalloc((size_t)C.nterms, sizeof(char *)); C.term_json_len = xcalloc((size_t)C.nterms, sizeof(int));
            for (int i = 0; i < C.nterms; i++) {
                C.term_path[i] = unhex(need_word(), &C.term_path_len[i]);
                C.term_plain[i] = unhex(need_word(), &C.term_plain_len[i]);
                C.term_json[i] = unhex(need_word(), &C.term_json_len[i]);
            }
        }
        else if (!strcmp(w, "arrivals")) {
            C.narr = need_int();
            C.arr_gi = xmalloc(sizeof(long long) * (size_t)(C.narr + 1));
            C.arr_t = xmalloc(sizeof(double) * (size_t)(C.narr + 1));
            for (long long i = 0; i < C.narr; i++) { C.arr_gi[i] = need_int(); C.arr_t[i] = need_f(); }
        }
        else if (!strcmp(w, "end")) break;
        else die("config: unknown directive");
    }
    if (!C.nact || !C.has_row[0] || !C.products.n || !C.pages.n || !C.terms.n || C.connections < 1) die("config: incomplete");
}

/* ---------------------------------------------------------------------------------------------
 * heaps of (time, id, generation) */
typedef struct { double t; uint32_t id, gen; uint32_t id2, gen2; } HEnt;
typedef struct { HEnt *e; size_t n, cap; } Heap;
static void heap_push(Heap *h, HEnt x) {
    if (h->n == h->cap) { h->cap = h->cap ? h->cap * 2 : 1024; h->e = xrealloc(h->e, h->cap * sizeof(HEnt)); }
    size_t i = h->n++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (h->e[p].t <= x.t) break;
        h->e[i] = h->e[p];
        i = p;
    }
    h->e[i] = x;
}
static HEnt heap_pop(Heap *h) {
    HEnt top = h->e[0];
    HEnt last = h->e[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= n) break;
        size_t c = (l + 1 < n && h->e[l + 1].t < h->e[l].t) ? l + 1 : l;
        if (h->e[c].t >= last.t) break;
        h->e[i] = h->e[c];
        i = c;
    }
    if (n) h->e[i] = last;
    return top;
}
static inline double heap_top(const Heap *h) { return h->n ? h->e[0].t : INFINITY; }

/* ---------------------------------------------------------------------------------------------
 * sessions, requests, connections */
typedef struct { int nxt; double think; int sku, page, term; } Step;
typedef struct { int *v; int n, cap; } IVec;
static void iv_push(IVec *v, int x) {
    if (v->n == v->cap) { v->cap = v->cap ? v->cap * 2 : 4; v->v = xrealloc(v->v, sizeof(int) * (size_t)v->cap); }
    v->v[v->n++] = x;
}
static void iv_copy(IVec *dst, const IVec *src) {
    dst->n = 0;
    for (int i = 0; i < src->n; i++) iv_push(dst, src->v[i]);
}
static void iv_free(IVec *v) { free(v->v); v->v = NULL; v->n = v->cap = 0; }

typedef struct {
    uint32_t gen;
    int refs;                    /* 1 while live, +1 per request in flight */
    int live, use_patience, has_step, attempt, a, walk_state, walk_n, walk_done;
    long long gi;
    double intended, patience;
    MT *rng, *imp;
    int sku, page, term, last_sku;
    int pcounter;                /* the walk's counter for sequential products */
    uint32_t checkouts, keyn;
    int has_key;
    IVec cart, vcart, unsure;    /* unsure: skus, -1 for "*" (the whole cart) */
    int has_unsure;
    Step step;
    uint32_t req, req_gen;       /* the request the shopper waits for (req_gen 0: none) */
    char *raw; int rawlen;
    uint32_t next_free;
} Sess;

typedef struct {
    uint32_t gen;
    int live, done, a, no_body, want_body, attempt;
    uint32_t sid, sgen;
    double intended, t_sent, deadline;
    char *raw; int rawlen;
    int conn;
    uint32_t keyn; int has_key;
    uint32_t next_free;
} Req;

enum { CS_FREE = 0, CS_CONNECTING, CS_OPEN };
typedef struct {
    uint32_t gen;
    int state, fd, closed, reused;
    int req;                     /* -1: none */
    int pend_req; uint32_t pend_gen; /* the request it was opened for (while connecting) */
    char *buf; size_t len, cap;
    size_t woff;                 /* bytes of the current request written */
    int want_out;
    int idle_pos;                /* position in the idle stack, -1 when not idle */
    uint32_t next_free;
} Conn;

static Sess *S; static uint32_t S_cap, S_free = UINT32_MAX;
static Req *R; static uint32_t R_cap, R_free = UINT32_MAX;
static Conn *K; static uint32_t K_cap;
static int *idle; static int n_idle;
static int n_conns, n_connecting;
static struct { uint32_t *id, *gen; size_t head, tail, cap; } W; /* FIFO of waiting requests */
static struct { uint32_t *id, *gen; size_t n, cap; } READY, READY2;
static Heap think_heap, patience_heap, deadline_heap;
static int epfd;

static uint32_t sess_new(void) {
    if (S_free == UINT32_MAX) {
        uint32_t old = S_cap;
        S_cap = S_cap ? S_cap * 2 : 4096;
        S = xrealloc(S, sizeof(Sess) * S_cap);
        memset(S + old, 0, sizeof(Sess) * (S_cap - old));
        for (uint32_t i = S_cap; i-- > old;) { S[i].next_free = S_free; S_free = i; S[i].gen = 1; }
    }
    uint32_t i = S_free;
    S_free = S[i].next_free;
    uint32_t gen = S[i].gen;
    IVec c = S[i].cart, v = S[i].vcart, u = S[i].unsure;
    memset(&S[i], 0, sizeof(Sess));
    S[i].gen = gen; S[i].cart = c; S[i].vcart = v; S[i].unsure = u;
    S[i].cart.n = S[i].vcart.n = S[i].unsure.n = 0;
    return i;
}
static void sess_unref(uint32_t i) {
    Sess *s = &S[i];
    if (--s->refs > 0) return;
    free(s->rng); s->rng = NULL;
    free(s->imp); s->imp = NULL;
    free(s->raw); s->raw = NULL;
    if (s->cart.cap > 64) iv_free(&s->cart);
    if (s->vcart.cap > 64) iv_free(&s->vcart);
    if (s->unsure.cap > 64) iv_free(&s->unsure);
    s->gen++;
    if (!s->gen) s->gen = 1;
    s->next_free = S_free;
    S_free = i;
}
static uint32_t req_new(void) {
    if (R_free == UINT32_MAX) {
        uint32_t old = R_cap;
        R_cap = R_cap ? R_cap * 2 : 4096;
        R = xrealloc(R, sizeof(Req) * R_cap);
        memset(R + old, 0, sizeof(Req) * (R_cap - old));
        for (uint32_t i = R_cap; i-- > old;) { R[i].next_free = R_free; R_free = i; R[i].gen = 1; }
    }
    uint32_t i = R_free;
    R_free = R[i].next_free;
    uint32_t gen = R[i].gen;
    memset(&R[i], 0, sizeof(Req));
    R[i].gen = gen;
    R[i].live = 1;
    R[i].conn = -1;
    return i;
}
static void req_free(uint32_t i) {
    Req *q = &R[i];
    free(q->raw); q->raw = NULL;
    q->live = 0;
    q->gen++;
    if (!q->gen) q->gen = 1;
    q->next_free = R_free;
    R_free = i;
}
static inline int req_ok(uint32_t id, uint32_t gen) { return id < R_cap && R[id].live && R[id].gen == gen && !R[id].done; }

/* ---------------------------------------------------------------------------------------------
 * recording */
static double t0, end_sending, hard_end;
static int nsec;
typedef struct { long long count, ok, err, queued; double max_us; uint32_t *ck; int nk; int kcode[24]; long long kn[24]; } SecRow;
typedef struct {
    long long count, ok, queued, impatient, errors[6];
    long long status[600];
    uint32_t *lat[NCLS];
    uint32_t *svc;
    SecRow **sec;
} AStat;
static AStat *AS;
static long long sent, inflight, unfinished, active, retries;
static struct { long long arrived, started, refused, completed, abandoned; } SC;
static long long (*sess_sec)[2];
static int stopping, arrivals_done;
static const char *stop_reason = "";
static FILE *orders_out;  /* orders go straight to a temporary file: no memory kept per order */
static double inv_log_fine;
/* responses that set a cookie while the profile keeps cookies: the native engine has no jar */
static long long set_cookies; static char cookie_example[256]; static size_t cookie_example_len;

/* health per second */
typedef struct { uint32_t lag[MAXCI], send[MAXCI]; double lag_max, send_max; int qmax; double cpu_s, wall_s; int any_lag, any_send; } HSec;
static HSec *HS;
static int cpu_sec = -1; static double cpu_t, cpu_wall;

static inline int clampsec(double x) {
    int s = (int)x;
    if (x < 0) s = 0;
    return s >= nsec ? nsec - 1 : s;
}
static inline int fine_index(double us) {
    if (!(us > 1.0)) return 0;
    int i = (int)(log(us) * inv_log_fine) + 1;
    return i >= MAXFI ? MAXFI - 1 : i;
}
static inline int sketch_index(double us) {
    if (!(us > 1.0)) return 0;
    int i = ((int)(log(us) * inv_log_fine) + 40) / 40;
    return i >= MAXCI ? MAXCI - 1 : i;
}
static void h_add(int which, int sec, double us) {
    HSec *h = &HS[sec];
    int b = sketch_index(us);
    if (which == 0) { h->lag[b]++; h->any_lag = 1; if (us > h->lag_max) h->lag_max = us; }
    else { h->send[b]++; h->any_send = 1; if (us > h->send_max) h->send_max = us; }
}
static void cpu_roll(double now) {
    int now_sec = clampsec(now - t0);
    double cpu = thread_cpu();
    if (cpu_sec >= 0) { HS[cpu_sec].cpu_s += cpu - cpu_t; HS[cpu_sec].wall_s += now - cpu_wall; }
    cpu_sec = now_sec; cpu_t = cpu; cpu_wall = now;
}
static void loop_lag(double expected, double now, int queued) {
    double lag = now - expected;
    int sec = clampsec(expected - t0);
    h_add(0, sec, lag * 1e6);
    if (lag > TICK_S) {
        int missed = (int)(lag / TICK_S);
        if (missed > 2000) missed = 2000;
        for (int k = 1; k <= missed; k++) {
            double due = expected + k * TICK_S;
            h_add(0, clampsec(due - t0), (now - due) * 1e6);
        }
        int last = (int)(now - t0);
        int hi = last < sec + 3600 ? last : sec + 3600;
        for (int s = (int)(expected + missed * TICK_S - t0) + 1; s <= hi && s < nsec; s++) h_add(0, s, (now - (t0 + s)) * 1e6);
    }
    if (queued > HS[sec].qmax) HS[sec].qmax = queued;
    if (clampsec(now - t0) != cpu_sec) cpu_roll(now);
}

static void stop(const char *why) { if (!stopping) { stopping = 1; stop_reason = why; } }

/* ---------------------------------------------------------------------------------------------
 * the walk: CompiledPlan.walk, step by step */
static int pick(const Picker *p, double rnd) {
    if (p->mode == 0) {
        double x = rnd * p->total;
        int lo = 0, hi = p->n; /* bisect_right */
        while (lo < hi) { int mid = (lo + hi) / 2; if (x < p->cum[mid]) hi = mid; else lo = mid + 1; }
        return lo < p->n ? lo : p->n - 1;
    }
    int i = (int)(rnd * p->n);
    return i < p->n ? i : p->n - 1;
}
static int pick_product(Sess *s, double rnd, int *counter) {
    if (C.products.mode == 2) {
        int c = *counter;
        if (c < 0) c = (int)s->gi;
        *counter = c + 1;
        return c % C.products.n;
    }
    return pick(&C.products, rnd);
}
static int walk_next(Sess *s, Step *out, int *counter) {
    MT *r = s->rng;
    if (s->walk_done || s->walk_n >= C.max_actions) { s->walk_done = 1; return 0; }
    int n = s->walk_n++;
    int k = s->walk_state == -2 ? 0 : s->walk_state + 1;
    const Row *row = s->cart.n ? &C.rows_full[k] : &C.rows_empty[k];
    double x = mt_random(r);
    int lo = 0, hi = row->n;
    while (lo < hi) { int mid = (lo + hi) / 2; if (x < row->c[mid]) hi = mid; else lo = mid + 1; }
    int nxt = row->t[lo < row->n ? lo : row->n - 1];
    if (nxt == -1) { s->walk_done = 1; return 0; }
    double think = (n > 0 && s->walk_state >= 0) ? dist_sample(&C.act[s->walk_state].think, r) * C.think_scale : 0.0;
    int sku = -1, page = -1, term = -1;
    Action *na = &C.act[nxt];
    for (int i = 0; i < na->ndraws; i++) {
        int d = na->draws[i];
        if (d == DRAW_SKU) sku = C.first_sku + pick_product(s, mt_random(r), counter);
        else if (d == DRAW_PAGE) page = 1 + pick(&C.pages, mt_random(r));
        else if (d == DRAW_QUERY) term = pick(&C.terms, mt_random(r));
    }
    int op = na->cart_op;
    if (op == CART_ADD) {
        if (sku < 0) {
            if (s->last_sku >= 0 && s->walk_state >= 0 && C.act[s->walk_state].draws_sku) sku = s->last_sku;
            else sku = C.first_sku + pick_product(s, mt_random(r), counter);
        }
        int found = 0;
        for (int i = 0; i < s->cart.n; i++) if (s->cart.v[i] == sku) { found = 1; break; }
        if (!found) iv_push(&s->cart, sku);
        iv_copy(&s->vcart, &s->cart);
    } else if (op == CART_REMOVE) {
        int i = (int)(mt_random(r) * s->cart.n);
        sku = s->cart.v[i];
        memmove(s->cart.v + i, s->cart.v + i + 1, sizeof(int) * (size_t)(s->cart.n - i - 1));
        s->cart.n--;
        iv_copy(&s->vcart, &s->cart);
    } else if (op == CART_CLEAR) {
        iv_copy(&s->vcart, &s->cart);
        s->cart.n = 0;
    }
    if (na->draws_sku) s->last_sku = sku;
    s->walk_state = nxt;
    out->nxt = nxt; out->think = think; out->sku = sku; out->page = page; out->term = term;
    return 1;
}

/* ---------------------------------------------------------------------------------------------
 * rendering */
static char *rbuf; static size_t rcap;
static size_t rlen;
static inline void rput(const char *p, size_t n) {
    if (rlen + n > rcap) { rcap = (rlen + n) * 2 + 256; rbuf = xrealloc(rbuf, rcap); }
    memcpy(rbuf + rlen, p, n);
    rlen += n;
}
static void put_var(Sess *s, int kind, int var) {
    char tmp[128];
    int n = 0;
    int json_str = kind == T_VAR_JSON;
    switch (var) {
    case V_SKU: if (s->sku >= 0) n = snprintf(tmp, sizeof tmp, "%d", s->sku); else if (json_str) { rput("\"\"", 2); return; } break;
    case V_PAGE: if (s->page >= 0) n = snprintf(tmp, sizeof tmp, "%d", s->page); else if (json_str) { rput("\"\"", 2); return; } break;
    case V_QUERY:
        if (s->term >= 0) {
            if (kind == T_VAR_PATH) rput(C.term_path[s->term], (size_t)C.term_path_len[s->term]);
            else if (kind == T_VAR_PLAIN) rput(C.term_plain[s->term], (size_t)C.term_plain_len[s->term]);
            else rput(C.term_json[s->term], (size_t)C.term_json_len[s->term]);
        } else if (json_str) rput("\"\"", 2);
        return;
    case V_CART_ID: n = snprintf(tmp, sizeof tmp, json_str ? "\"pc-%.*s-%lld\"" : "pc-%.*s-%lld", C.run_id_len, C.run_id, s->gi); break;
    case V_KEY:
        if (s->has_key) n = snprintf(tmp, sizeof tmp, json_str ? "\"pc-%.*s-%lld-%u\"" : "pc-%.*s-%lld-%u", C.run_id_len, C.run_id, s->gi, s->keyn);
        else if (json_str) { rput("\"\"", 2); return; }
        break;
    case V_SESSION: n = snprintf(tmp, sizeof tmp, "%lld", s->gi); break;
    case V_RUN_ID: n = snprintf(tmp, sizeof tmp, json_str ? "\"%.*s\"" : "%.*s", C.run_id_len, C.run_id); break;
    case V_QTY: n = snprintf(tmp, sizeof tmp, "%d", C.qty); break;
    }
    rput(tmp, (size_t)n);
}
static void render(Sess *s, Action *a) {
    char body[4096];
    size_t blen = 0;
    if (a->has_body) {
        rlen = 0;
        for (int i = 0; i < a->body.n; i++) {
            Tok *t = &a->body.t[i];
            if (t->kind == T_LIT) rput(t->lit, (size_t)t->len); else put_var(s, t->kind, t->var);
        }
        if (rlen > sizeof body) die("a request body over 4 KiB");
        memcpy(body, rbuf, rlen);
        blen = rlen;
    }
    rlen = 0;
    for (int i = 0; i < a->head.n; i++) {
        Tok *t = &a->head.t[i];
        if (t->kind == T_LIT) rput(t->lit, (size_t)t->len);
        else if (t->kind == T_CLEN) { char tmp[32]; int n = snprintf(tmp, sizeof tmp, "%zu", blen); rput(tmp, (size_t)n); }
        else put_var(s, t->kind, t->var);
    }
    if (blen) rput(body, blen);
    free(s->raw);
    s->raw = xmalloc(rlen);
    memcpy(s->raw, rbuf, rlen);
    s->rawlen = (int)rlen;
}

/* ---------------------------------------------------------------------------------------------
 * the pool */
static void on_done(uint32_t rid, int status, const char *body, size_t blen, int err, double t_done);
static void conn_close(int ci);
static void conn_send(int ci, uint32_t rid);

enum { E_NONE = 0, E_TIMEOUT = -1, E_RESET = -2, E_REFUSED = -3, E_OTHER = -4, E_NO_RETRY_AFTER = 1 };

static int *K_freelist; static int K_nfree;
static int pool_closed;
static int conn_alloc(void) {
    if (!K_nfree) {
        uint32_t old = K_cap;
        K_cap = K_cap ? K_cap * 2 : 256;
        K = xrealloc(K, sizeof(Conn) * K_cap);
        memset(K + old, 0, sizeof(Conn) * (K_cap - old));
        K_freelist = xrealloc(K_freelist, sizeof(int) * K_cap);
        for (uint32_t i = K_cap; i-- > old;) { K[i].gen = 1; K_freelist[K_nfree++] = (int)i; }
    }
    int ci = K_freelist[--K_nfree];
    Conn *c = &K[ci];
    uint32_t gen = c->gen;
    char *buf = c->buf; size_t cap = c->cap;
    memset(c, 0, sizeof(Conn));
    c->gen = gen; c->buf = buf; c->cap = cap;
    c->req = -1; c->pend_req = -1; c->idle_pos = -1; c->fd = -1;
    return ci;
}
static void ep_set(int ci, int out) {
    Conn *c = &K[ci];
    struct epoll_event ev;
    ev.events = EPOLLIN | EPOLLRDHUP | (out ? EPOLLOUT : 0);
    ev.data.u64 = ((uint64_t)c->gen << 32) | (uint32_t)ci;
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = out;
}
static void pool_open(uint32_t rid) {
    if (pool_closed) { on_done(rid, 0, NULL, 0, E_OTHER, mono()); return; }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { on_done(rid, 0, NULL, 0, E_OTHER, mono()); return; }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = connect(fd, (struct sockaddr *)&C.addr, sizeof C.addr);
    if (rc < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        on_done(rid, 0, NULL, 0, e == ECONNREFUSED ? E_REFUSED : E_OTHER, mono());
        return;
    }
    int ci = conn_alloc();
    Conn *c = &K[ci];
    c->fd = fd;
    c->state = CS_CONNECTING;
    c->pend_req = (int)rid; c->pend_gen = R[rid].gen;
    n_connecting++;
    struct epoll_event ev;
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    ev.data.u64 = ((uint64_t)c->gen << 32) | (uint32_t)ci;
    c->want_out = 1;
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}
static void w_push(uint32_t id, uint32_t gen) {
    if (W.tail - W.head == W.cap) {
        size_t ncap = W.cap ? W.cap * 2 : 1024;
        uint32_t *ni = xmalloc(sizeof(uint32_t) * ncap), *ng = xmalloc(sizeof(uint32_t) * ncap);
        for (size_t k = 0; k < W.tail - W.head; k++) { ni[k] = W.id[(W.head + k) % (W.cap ? W.cap : 1)]; ng[k] = W.gen[(W.head + k) % (W.cap ? W.cap : 1)]; }
        free(W.id); free(W.gen);
        W.tail -= W.head; W.head = 0; W.id = ni; W.gen = ng; W.cap = ncap;
    }
    W.id[W.tail % W.cap] = id; W.gen[W.tail % W.cap] = gen; W.tail++;
}
static int w_pop(uint32_t *id) { /* the next live waiter */
    while (W.head < W.tail) {
        uint32_t i = W.id[W.head % W.cap], g = W.gen[W.head % W.cap];
        W.head++;
        if (req_ok(i, g)) { *id = i; return 1; }
    }
    return 0;
}
static int w_oldest(uint32_t *id) {
    while (W.head < W.tail) {
        uint32_t i = W.id[W.head % W.cap], g = W.gen[W.head % W.cap];
        if (req_ok(i, g)) { *id = i; return 1; }
        W.head++;
    }
    return 0;
}
static size_t w_len(void) { return W.tail - W.head; }
static void idle_push(int ci) { K[ci].idle_pos = n_idle; idle[n_idle++] = ci; }
static void idle_remove(int ci) {
    int p = K[ci].idle_pos;
    if (p < 0) return;
    int last = idle[--n_idle];
    idle[p] = last; K[last].idle_pos = p;
    K[ci].idle_pos = -1;
}
static void pool_kick(void) {
    uint32_t rid;
    if (pool_closed) return;
    while (n_conns + n_connecting < C.connections && w_pop(&rid)) pool_open(rid);
}
static void pool_release(int ci) {
    uint32_t rid;
    if (w_pop(&rid)) { conn_send(ci, rid); return; }
    idle_push(ci);
}
static void pool_submit(uint32_t rid) {
    Req *q = &R[rid];
    HEnt e = {q->deadline, rid, q->gen, 0, 0};
    heap_push(&deadline_heap, e);
    if (n_idle) {
        int ci = idle[n_idle - 1];
        idle_remove(ci);
        conn_send(ci, rid);
        return;
    }
    if (n_conns + n_connecting < C.connections) pool_open(rid);
    else w_push(rid, q->gen);
}
static void conn_write(int ci) {
    Conn *c = &K[ci];
    if (c->req < 0) return;
    Req *q = &R[c->req];
    while (c->woff < (size_t)q->rawlen) {
        ssize_t n = write(c->fd, q->raw + c->woff, (size_t)q->rawlen - c->woff);
        if (n > 0) { c->woff += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) { if (!c->want_out) ep_set(ci, 1); return; }
        /* the peer is gone: connection_lost */
        uint32_t rid = (uint32_t)c->req;
        c->req = -1;
        conn_close(ci);
        R[rid].conn = -1;
        on_done(rid, 0, NULL, 0, E_RESET, mono());
        return;
    }
    if (c->want_out) ep_set(ci, 0);
}
static void conn_send(int ci, uint32_t rid) {
    Conn *c = &K[ci];
    Req *q = &R[rid];
    c->req = (int)rid;
    q->conn = ci;
    c->len = 0;
    c->woff = 0;
    q->t_sent = mono();
    conn_write(ci);
}
static void conn_close(int ci) {
    Conn *c = &K[ci];
    if (c->state == CS_FREE) return;
    if (c->state == CS_OPEN) n_conns--; else n_connecting--;
    idle_remove(ci);
    if (c->fd >= 0) { epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL); close(c->fd); }
    c->fd = -1;
    c->state = CS_FREE;
    c->gen++;
    if (!c->gen) c->gen = 1;
    if (c->cap > 65536) { free(c->buf); c->buf = NULL; c->cap = 0; }
    c->len = 0;
    K_freelist[K_nfree++] = ci;
    pool_kick();
}

/* --- responses --- */
static const char *find_ci(const char *h, size_t n, const char *needle) { /* case-insensitive, needle lower-case */
    size_t m = strlen(needle);
    if (n < m) return NULL;
    for (size_t i = 0; i + m <= n; i++) {
        if ((h[i] | 32) != needle[0] && h[i] != needle[0]) continue;
        if (!strncasecmp(h + i, needle, m)) return h + i;
    }
    return NULL;
}
static const char *line_value(const char *h, size_t n, const char *name, size_t *vlen) {
    const char *p = find_ci(h, n, name);
    if (!p) return NULL;
    p += strlen(name);
    const char *e = memchr(p, '\r', (size_t)(h + n - p));
    if (!e) e = h + n;
    while (p < e && (*p == ' ' || *p == '\t')) p++;
    const char *q = e;
    while (q > p && (q[-1] == ' ' || q[-1] == '\t')) q--;
    *vlen = (size_t)(q - p);
    return p;
}
static char *dechunk; static size_t dechunk_cap;
/* 1: complete (status, body, keep_alive, flag), 0: incomplete, -1: malformed */
static int parse_response(const char *buf, size_t len, int no_body, int eof, int want_body,
                          int *status, const char **body, size_t *blen, int *keep, int *flag) {
    size_t off = 0;
    for (int round = 0; round < 8; round++) {
        const char *e = memmem(buf + off, len - off, "\r\n\r\n", 4);
        if (!e) return 0;
        const char *h = buf + off;
        size_t hn = (size_t)(e - h);
        if (hn < 12 || memcmp(h, "HTTP/", 5)) return -1;
        if (h[9] < '0' || h[9] > '9' || h[10] < '0' || h[10] > '9' || h[11] < '0' || h[11] > '9') return -1;
        int st = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
        if (st >= 100 && st < 200) { off = (size_t)(e - buf) + 4; continue; }
        size_t vl;
        const char *cv = line_value(h, hn, "\r\nconnection:", &vl);
        int ka;
        if (!memcmp(h + 5, "1.0", 3)) ka = cv && find_ci(cv, vl, "keep-alive");
        else ka = !cv || !find_ci(cv, vl, "close");
        *flag = 0;
        if ((st == 503 || st == 429) && !find_ci(h, hn, "\r\nretry-after:")) *flag = E_NO_RETRY_AFTER;
        size_t start = (size_t)(e - buf) + 4;
        *status = st; *keep = ka; *body = NULL; *blen = 0;
        if (no_body || st == 204 || st == 304) return 1;
        const char *cl = line_value(h, hn, "\r\ncontent-length:", &vl);
        if (cl) {
            char tmp[32];
            if (vl == 0 || vl >= sizeof tmp) return -1;
            memcpy(tmp, cl, vl); tmp[vl] = 0;
            char *endp;
            long long n = strtoll(tmp, &endp, 10);
            if (*endp || n < 0) return -1;
            if (len - start < (size_t)n) return 0;
            *body = buf + start; *blen = (size_t)n;
            return 1;
        }
        const char *te = line_value(h, hn, "\r\ntransfer-encoding:", &vl);
        if (te && find_ci(te, vl, "chunked")) {
            size_t pos = start, out = 0;
            for (int k = 0; k < 1000000; k++) {
                const char *eol = memmem(buf + pos, len - pos, "\r\n", 2);
                if (!eol) return 0;
                char *endp;
                char tmp[32];
                size_t sl = (size_t)(eol - (buf + pos));
                if (sl >= sizeof tmp) return -1;
                memcpy(tmp, buf + pos, sl); tmp[sl] = 0;
                char *semi = strchr(tmp, ';'); if (semi) *semi = 0;
                long long sz = strtoll(tmp, &endp, 16);
                while (*endp == ' ' || *endp == '\t') endp++;
                if (endp == tmp || *endp || sz < 0) return -1;
                pos = (size_t)(eol - buf) + 2;
                if (sz == 0) {
                    if (!memmem(buf + pos - 2, len - (pos - 2), "\r\n\r\n", 4)) return 0;
                    *body = dechunk; *blen = out;
                    return 1;
                }
                if (len < pos + (size_t)sz + 2) return 0;
                if (want_body) {
                    if (out + (size_t)sz > dechunk_cap) { dechunk_cap = (out + (size_t)sz) * 2; dechunk = xrealloc(dechunk, dechunk_cap); }
                    memcpy(dechunk + out, buf + pos, (size_t)sz);
                }
                out += (size_t)sz;
                pos += (size_t)sz + 2;
            }
            return -1;
        }
        if (eof) { *body = buf + start; *blen = len - start; *keep = 0; return 1; }
        return 0;
    }
    return -1;
}
static void conn_fail(int ci, int kind) {
    Conn *c = &K[ci];
    int rid = c->req;
    c->req = -1;
    conn_close(ci);
    if (rid >= 0 && R[rid].live && !R[rid].done) { R[rid].conn = -1; on_done((uint32_t)rid, 0, NULL, 0, kind, mono()); }
}
static void conn_readable(int ci, int hup) {
    Conn *c = &K[ci];
    int eof = 0, err = 0;
    for (int k = 0; k < 64; k++) {
        if (c->cap - c->len < 16384) { c->cap = c->cap ? c->cap * 2 : 32768; c->buf = xrealloc(c->buf, c->cap); }
        ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (n > 0) { c->len += (size_t)n; if ((size_t)n < c->cap - c->len + (size_t)n) { /* maybe more */ } continue; }
        if (n == 0) { eof = 1; break; }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) err = 1;
        break;
    }
    if (c->req < 0) { if (c->len || eof || err || hup) conn_close(ci); return; }  /* unsolicited bytes or a closed idle connection */
    if (c->len > MAX_RESPONSE) { conn_fail(ci, E_OTHER); return; }
    Req *q = &R[c->req];
    int st, keep, flag; const char *body; size_t blen;
    int rc = c->len ? parse_response(c->buf, c->len, q->no_body, eof || err, q->want_body, &st, &body, &blen, &keep, &flag) : 0;
    if (rc < 0) { conn_fail(ci, E_OTHER); return; }
    if (rc == 0) {
        if (eof || err || hup) conn_fail(ci, E_RESET);
        return;
    }
    uint32_t rid = (uint32_t)c->req;
    c->req = -1;
    q->conn = -1;
    if (C.cookies) {
        const char *he = memmem(c->buf, c->len, "\r\n\r\n", 4);
        size_t vl;
        const char *v = he ? line_value(c->buf, (size_t)(he - c->buf), "\r\nset-cookie:", &vl) : NULL;
        if (v) {
            if (!set_cookies++) { cookie_example_len = vl < sizeof cookie_example ? vl : sizeof cookie_example; memcpy(cookie_example, v, cookie_example_len); }
        }
    }
    double t = mono();
    if (!q->done) on_done(rid, st, body, blen, flag, t);
    c->len = 0;
    if (keep && !eof && !err && !hup && c->state == CS_OPEN) { c->reused = 1; pool_release(ci); }
    else conn_close(ci);
}
static void conn_event(int ci, uint32_t events) {
    Conn *c = &K[ci];
    if (c->state == CS_CONNECTING) {
        int e = 0; socklen_t el = sizeof e;
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
        uint32_t rid = (uint32_t)c->pend_req, rgen = c->pend_gen;
        c->pend_req = -1;
        if (e || (events & (EPOLLERR | EPOLLHUP))) {
            int kind = e == ECONNREFUSED ? E_REFUSED : e == ETIMEDOUT ? E_TIMEOUT : E_OTHER;
            conn_close(ci);
            if (req_ok(rid, rgen)) on_done(rid, 0, NULL, 0, kind, mono());
            return;
        }
        c->state = CS_OPEN;
        n_connecting--; n_conns++;
        ep_set(ci, 0);
        if (!req_ok(rid, rgen)) pool_release(ci); /* expired while connecting: the next waiter gets it */
        else conn_send(ci, rid);
        return;
    }
    if (events & EPOLLOUT) {
        uint32_t g = c->gen;
        conn_write(ci);
        if (K[ci].gen != g || K[ci].state == CS_FREE) return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) conn_readable(ci, (events & (EPOLLHUP | EPOLLERR)) != 0);
}

/* ---------------------------------------------------------------------------------------------
 * sessions */
static void advance(uint32_t si, const Step *given);
static void ready_push(uint32_t si) {
    if (READY.n == READY.cap) { READY.cap = READY.cap ? READY.cap * 2 : 1024; READY.id = xrealloc(READY.id, 4 * READY.cap); READY.gen = xrealloc(READY.gen, 4 * READY.cap); }
    READY.id[READY.n] = si; READY.gen[READY.n] = S[si].gen; READY.n++;
}
static void drain_ready(void) {
    for (int round = 0; round < 16 && READY.n; round++) {
        /* swap: sessions resumed while draining go to the next round */
        uint32_t *id = READY.id, *gen = READY.gen; size_t n = READY.n, cap = READY.cap;
        READY.id = READY2.id; READY.gen = READY2.gen; READY.cap = READY2.cap; READY.n = 0;
        READY2.id = id; READY2.gen = gen; READY2.cap = cap;
        for (size_t k = 0; k < n; k++) {
            uint32_t si = id[k];
            if (S[si].gen == gen[k] && S[si].live) { S[si].refs++; advance(si, NULL); sess_unref(si); }
        }
    }
}
static void sess_end(uint32_t si) {
    Sess *s = &S[si];
    if (s->live) { s->live = 0; s->has_step = 0; active--; free(s->rng); s->rng = NULL; sess_unref(si); }
}
static void cart_unsure(Action *a, Sess *s, int abandoned) {
    if (!a->cart_track) return;
    s->has_unsure = 1;
    iv_push(&s->unsure, abandoned ? -1 : s->sku);
}
static void put_hex(FILE *f, const char *p, size_t n) {
    static const char *hx = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) { fputc(hx[(uint8_t)p[i] >> 4], f); fputc(hx[(uint8_t)p[i] & 15], f); }
}
static void on_done(uint32_t rid, int status, const char *body, size_t blen, int err, double t_done) {
    Req *q = &R[rid];
    q->done = 1;
    uint32_t si = q->sid;
    Sess *s = &S[si];
    int a = q->a;
    Action *act = &C.act[a];
    AStat *A = &AS[a];
    inflight--;
    int waiting = s->req_gen && s->req == rid && s->req_gen == q->gen; /* st.req is req */
    double lat = (t_done - q->intended) * 1e6;
    int fi = fine_index(lat);
    A->count++;
    int cls = status ? status / 100 : 0;
    if (cls >= NCLS) cls = 0;
    if (!A->lat[cls]) A->lat[cls] = xcalloc(MAXFI, sizeof(uint32_t));
    A->lat[cls][fi]++;
    if (q->t_sent > 0.0) {
        if (!A->svc) A->svc = xcalloc(MAXFI, sizeof(uint32_t));
        A->svc[fine_index((t_done - q->t_sent) * 1e6)]++;
    }
    int ok = 0, queued = 0;
    if (status) {
        if (status < 600) A->status[status]++;
        if (status < 400) {
            ok = 1; A->ok++;
            if (status == 202) { queued = 1; A->queued++; }
        } else if (status >= 500) A->errors[0]++;
        else A->errors[1]++;
        int acked = 0;
        for (int i = 0; i < act->nack; i++) if (act->ack[i] == status) acked = 1;
        if (acked) {
            /* AckOrder: key, status, order body (the Python side reads the id), action, the planned cart */
            fprintf(orders_out, "O %lld %u %d %d %d ", s->gi, q->keyn, q->has_key, status, a);
            int items_known = 0;
            if (act->orders_cart) {
                int abandoned = !waiting, star = 0;
                for (int i = 0; i < s->unsure.n; i++) if (s->unsure.v[i] == -1) star = 1;
                items_known = !(abandoned || (s->has_unsure && star));
                if (items_known) {
                    fprintf(orders_out, "%d", s->vcart.n);
                    for (int i = 0; i < s->vcart.n; i++) fprintf(orders_out, " %d", s->vcart.v[i]);
                    fprintf(orders_out, " %d", s->has_unsure ? s->unsure.n : 0);
                    for (int i = 0; s->has_unsure && i < s->unsure.n; i++) fprintf(orders_out, " %d", s->unsure.v[i]);
                } else fprintf(orders_out, "-1 0");
                s->unsure.n = 0; s->has_unsure = 0;
            } else fprintf(orders_out, "-2 0");
            fputc(' ', orders_out);
            if (body && blen) put_hex(orders_out, body, blen); else fputc('-', orders_out);
            fputc('\n', orders_out);
        }
        if (!ok || !waiting) cart_unsure(act, s, !waiting);
    } else {
        int kind = err == E_TIMEOUT ? 2 : err == E_RESET ? 3 : err == E_REFUSED ? 4 : 5;
        A->errors[kind]++;
        cart_unsure(act, s, !waiting);
    }
    int sec = clampsec(q->intended - t0);
    SecRow *row = A->sec[sec];
    if (!row) { row = A->sec[sec] = xcalloc(1, sizeof(SecRow)); row->ck = xcalloc(MAXCI, sizeof(uint32_t)); }
    row->count++; row->ok += ok; row->err += 1 - ok; row->queued += queued;
    if (!ok) {
        int code = status ? status * 2 + (err == E_NO_RETRY_AFTER ? 1 : 0) : err; /* transport kinds < 0 */
        int k;
        for (k = 0; k < row->nk; k++) if (row->kcode[k] == code) break;
        if (k == row->nk && row->nk < 24) { row->kcode[row->nk] = code; row->kn[row->nk] = 0; row->nk++; }
        if (k < row->nk) row->kn[k]++;
    }
    if (lat > row->max_us) row->max_us = lat;
    row->ck[(fi + 39) / 40]++;
    if (waiting) {
        s->req_gen = 0;
        free(s->raw); s->raw = NULL;
        s->intended = t_done;
        ready_push(si);
    }
    req_free(rid);
    sess_unref(si);
}

static void submit(uint32_t si) {
    Sess *s = &S[si];
    if (sent >= C.max_requests) stop("max_requests");
    if (stopping || s->intended >= end_sending) { sess_end(si); return; }
    double intended = s->intended;
    sent++; inflight++;
    uint32_t rid = req_new();
    Req *q = &R[rid];
    Action *act = &C.act[s->a];
    q->a = s->a; q->intended = intended; q->deadline = intended + C.timeout;
    q->sid = si; q->sgen = s->gen; q->no_body = act->no_body; q->want_body = act->nack > 0;
    q->keyn = s->keyn; q->has_key = s->has_key;
    q->raw = xmalloc((size_t)s->rawlen); memcpy(q->raw, s->raw, (size_t)s->rawlen); q->rawlen = s->rawlen;
    s->refs++;
    s->req = rid; s->req_gen = q->gen;
    uint32_t gen = q->gen;
    pool_submit(rid);
    if (R[rid].gen == gen && R[rid].live && R[rid].t_sent > 0.0) h_add(1, clampsec(intended - t0), (R[rid].t_sent - intended) * 1e6);
    if (s->use_patience && s->live) { HEnt e = {intended + s->patience, si, s->gen, rid, gen}; heap_push(&patience_heap, e); }
}

static void advance(uint32_t si, const Step *given) {
    Sess *s = &S[si];
    if (!s->live) return;
    Step step; int have = 0;
    if (given) { step = *given; have = 1; }
    for (int i = 0; i < C.max_actions + 2; i++) {
        Action *b;
        if (!have) {
            if (!walk_next(s, &step, &s->pcounter)) { SC.completed++; sess_end(si); return; }
            have = 1;
            b = &C.act[step.nxt];
            if (step.think > 0.0) {
                s->intended += step.think;
                if (s->intended >= end_sending) { sess_end(si); return; }
                if (b->sends && s->intended > mono()) {
                    s->step = step; s->has_step = 1;
                    HEnt e = {s->intended, si, s->gen, 0, 0};
                    heap_push(&think_heap, e);
                    return;
                }
            }
        } else b = &C.act[step.nxt];
        if (stopping || s->intended >= end_sending) { sess_end(si); return; }
        have = 0;
        if (step.sku >= 0) s->sku = step.sku;
        if (step.page >= 0) s->page = step.page;
        if (step.term >= 0) s->term = step.term;
        if (!b->sends) continue;
        if (b->keyed) { s->keyn = s->checkouts++; s->has_key = 1; }
        render(s, b);
        s->a = step.nxt;
        s->attempt = 0;
        submit(si);
        return;
    }
    sess_end(si);
}

static void start_session(long long gi, double when) {
    uint32_t si = sess_new();
    Sess *s = &S[si];
    char text[256];
    int n = snprintf(text, sizeof text, "%.*s:session:%lld:path", C.seed_len, C.seed_text, gi);
    s->rng = xmalloc(sizeof(MT));
    mt_seed64(s->rng, blake2b64((const uint8_t *)text, (size_t)n));
    s->patience = dist_sample(&C.patience, s->rng);
    s->gi = gi; s->live = 1; s->refs = 1;
    s->intended = when;
    s->use_patience = s->patience < C.timeout;
    s->walk_state = -2; s->sku = s->page = s->term = s->last_sku = -1;
    s->pcounter = -1;
    s->refs++;
    advance(si, NULL);
    sess_unref(si);
}

static void patience_over(uint32_t si, uint32_t sgen, uint32_t rid, uint32_t rgen) {
    if (S[si].gen != sgen) return;
    Sess *s = &S[si];
    if (!s->live || !s->req_gen || s->req != rid || s->req_gen != rgen) return;
    s->req_gen = 0; /* the shopper gave up waiting; the slow request runs on and is recorded */
    AS[s->a].impatient++;
    if (!s->imp) {
        char text[256];
        int n = snprintf(text, sizeof text, "%.*s:session:%lld:impatience", C.seed_len, C.seed_text, s->gi);
        s->imp = xmalloc(sizeof(MT));
        mt_seed64(s->imp, blake2b64((const uint8_t *)text, (size_t)n));
    }
    if (s->attempt < C.max_retries && mt_random(s->imp) < C.p_retry) {
        retries++;
        s->intended += s->patience;
        s->attempt++;
        s->refs++;
        submit(si);
        sess_unref(si);
        return;
    }
    SC.abandoned++;
    sess_end(si);
}

/* ---------------------------------------------------------------------------------------------
 * output */
static void write_results(const char *path, const char *orders_path, double elapsed) {
    FILE *f = fopen(path, "w");
    if (!f) die("cannot write the results file");
    fprintf(f, "elapsed %.9f\nsent %lld\nstop %s%s\nunfinished %lld\nretries %lld\n", elapsed, sent, stop_reason, "", unfinished, retries);
    fprintf(f, "sessions %lld %lld %lld %lld %lld\n", SC.arrived, SC.started, SC.refused, SC.completed, SC.abandoned);
    for (int a = 0; a < C.nact; a++) {
        AStat *A = &AS[a];
        if (!A->count && !A->impatient) continue;
        fprintf(f, "A %d %lld %lld %lld %lld", a, A->count, A->ok, A->queued, A->impatient);
        for (int k = 0; k < 6; k++) fprintf(f, " %lld", A->errors[k]);
        fputc('\n', f);
        fprintf(f, "ST %d", a);
        for (int st = 0; st < 600; st++) if (A->status[st]) fprintf(f, " %d:%lld", st, A->status[st]);
        fputc('\n', f);
        for (int c = 0; c < NCLS; c++) {
            if (!A->lat[c]) continue;
            fprintf(f, "LC %d %d", a, c);
            for (int i = 0; i < MAXFI; i++) if (A->lat[c][i]) fprintf(f, " %d:%u", i, A->lat[c][i]);
            fputc('\n', f);
        }
        if (A->svc) {
            fprintf(f, "SV %d", a);
            for (int i = 0; i < MAXFI; i++) if (A->svc[i]) fprintf(f, " %d:%u", i, A->svc[i]);
            fputc('\n', f);
        }
        for (int sec = 0; sec < nsec; sec++) {
            SecRow *r = A->sec[sec];
            if (!r || !r->count) continue;
            fprintf(f, "SEC %d %d %lld %lld %lld %lld %.3f", a, sec, r->count, r->ok, r->err, r->queued, r->max_us);
            for (int i = 0; i < MAXCI; i++) if (r->ck[i]) fprintf(f, " %d:%u", i, r->ck[i]);
            fprintf(f, " |");
            for (int k = 0; k < r->nk; k++) fprintf(f, " %d:%lld", r->kcode[k], r->kn[k]);
            fputc('\n', f);
        }
    }
    for (int sec = 0; sec < nsec; sec++) if (sess_sec[sec][0]) fprintf(f, "SS %d %lld %lld\n", sec, sess_sec[sec][0], sess_sec[sec][1]);
    for (int sec = 0; sec < nsec; sec++) {
        HSec *h = &HS[sec];
        if (!h->any_lag && !h->any_send && !h->qmax && h->wall_s == 0.0) continue;
        fprintf(f, "H %d %.3f %.3f %d %.6f %.6f", sec, h->lag_max, h->send_max, h->qmax, h->cpu_s, h->wall_s);
        fprintf(f, " L");
        for (int i = 0; i < MAXCI; i++) if (h->lag[i]) fprintf(f, " %d:%u", i, h->lag[i]);
        fprintf(f, " S");
        for (int i = 0; i < MAXCI; i++) if (h->send[i]) fprintf(f, " %d:%u", i, h->send[i]);
        fputc('\n', f);
    }
    fprintf(f, "cookies %lld ", set_cookies);
    put_hex(f, cookie_example, cookie_example_len);
    fprintf(f, "\norders %s\nend\n", orders_path);
    if (fclose(f)) die("cannot write the results file");
}

/* ---------------------------------------------------------------------------------------------
 * main loop */
static volatile sig_atomic_t got_signal;
static void on_signal(int sig) { (void)sig; got_signal = 1; }

static int stdin_line(char *buf, size_t cap) { /* blocking read of one line from stdin */
    size_t n = 0;
    while (n + 1 < cap) {
        char ch;
        ssize_t r = read(0, &ch, 1);
        if (r == 1) { if (ch == '\n') break; buf[n++] = ch; continue; }
        if (r < 0 && errno == EINTR) continue;
        return -1;
    }
    buf[n] = 0;
    return (int)n;
}

/* --walks CONFIG: each arrival's session walk, as the engine draws it (tests compare it with the planner) */
static int walks_main(const char *path) {
    load_config(path);
    for (long long i = 0; i < C.narr; i++) {
        uint32_t si = sess_new();
        Sess *s = &S[si];
        char text[256];
        int n = snprintf(text, sizeof text, "%.*s:session:%lld:path", C.seed_len, C.seed_text, C.arr_gi[i]);
        s->rng = xmalloc(sizeof(MT));
        mt_seed64(s->rng, blake2b64((const uint8_t *)text, (size_t)n));
        s->gi = C.arr_gi[i];
        s->walk_state = -2; s->sku = s->page = s->term = s->last_sku = -1;
        printf("-1 %.17g -1 -1 -1;", dist_sample(&C.patience, s->rng));
        Step st;
        int counter = -1;
        while (walk_next(s, &st, &counter)) printf(" %d %.17g %d %d %d;", st.nxt, st.think, st.sku, st.page, st.term);
        printf("\n");
        free(s->rng); s->rng = NULL;
        s->refs = 1;
        sess_unref(si);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--walks")) return walks_main(argv[2]);
    if (argc != 3) { fprintf(stderr, "usage: peakchaos-engine CONFIG RESULTS\n"); return 2; }
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL); sigaction(SIGTERM, &sa, NULL);
    inv_log_fine = 1.0 / log(1.001);
    load_config(argv[1]);
    struct rlimit rl;
    if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < (rlim_t)C.connections + 64) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)C.connections + 64 ? rl.rlim_max : (rlim_t)C.connections + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    nsec = (int)(C.duration + C.timeout + 10.0);
    AS = xcalloc((size_t)C.nact, sizeof(AStat));
    for (int a = 0; a < C.nact; a++) AS[a].sec = xcalloc((size_t)nsec, sizeof(SecRow *));
    HS = xcalloc((size_t)nsec, sizeof(HSec));
    sess_sec = xcalloc((size_t)nsec, sizeof *sess_sec);
    idle = xmalloc(sizeof(int) * ((size_t)C.connections + 1));
    /* every connection slot up front: the table never moves while pointers into it are held */
    K_cap = (uint32_t)C.connections + 1;
    K = xcalloc(K_cap, sizeof(Conn));
    K_freelist = xmalloc(sizeof(int) * K_cap);
    for (uint32_t i = K_cap; i-- > 0;) { K[i].gen = 1; K_freelist[K_nfree++] = (int)i; }
    char orders_path[4096];
    snprintf(orders_path, sizeof orders_path, "%s.orders", argv[2]);
    orders_out = fopen(orders_path, "w");
    if (!orders_out) die("cannot write the orders file");
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1 failed");

    printf("ready\n");
    fflush(stdout);
    char line[256];
    if (stdin_line(line, sizeof line) < 0 || strncmp(line, "t0 ", 3)) die("expected 't0 <seconds>' on stdin");
    t0 = strtod(line + 3, NULL);
    end_sending = t0 + C.duration;
    hard_end = end_sending + C.timeout + 1.0;
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = UINT64_MAX};
    epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev);

    cpu_sec = clampsec(mono() - t0); cpu_t = thread_cpu(); cpu_wall = mono();
    long long next_arr = 0;
    double next_tick = mono() + TICK_S, next_house = 0.0, drain_deadline = -1.0;
    int ctl_open = 1;
    struct epoll_event evs[512];
    long long max_iter = (long long)((C.duration + C.timeout + 5.0) * 1e6) + 10000000LL; /* bounded */
    for (long long it = 0; it < max_iter; it++) {
        double now = mono();
        /* arrivals due (up to half a millisecond early, as the Python engine's sleep) */
        while (!stopping && next_arr < C.narr && t0 + C.arr_t[next_arr] - now <= EARLY_S) {
            double t_rel = C.arr_t[next_arr];
            if (t_rel >= C.duration) { next_arr = C.narr; break; }
            SC.arrived++;
            int sec = clampsec(t_rel);
            sess_sec[sec][0]++;
            if (active >= C.cap) { SC.refused++; sess_sec[sec][1]++; next_arr++; continue; }
            SC.started++;
            active++;
            start_session(C.arr_gi[next_arr], t0 + t_rel);
            next_arr++;
        }
        if (next_arr >= C.narr) arrivals_done = 1;
        /* think times over (up to EARLY_S before their instant) */
        while (!stopping && think_heap.n && think_heap.e[0].t - EARLY_S <= now) {
            HEnt e = heap_pop(&think_heap);
            Sess *s = &S[e.id];
            if (s->gen != e.gen || !s->live || !s->has_step) continue;
            if (s->intended > now) s->intended = now;
            Step st = s->step;
            s->has_step = 0;
            s->refs++;
            advance(e.id, &st);
            sess_unref(e.id);
        }
        while (patience_heap.n && patience_heap.e[0].t <= now) {
            HEnt e = heap_pop(&patience_heap);
            patience_over(e.id, e.gen, e.id2, e.gen2);
        }
        while (deadline_heap.n && deadline_heap.e[0].t <= now) {
            HEnt e = heap_pop(&deadline_heap);
            if (!req_ok(e.id, e.gen)) continue;
            Req *q = &R[e.id];
            if (q->conn >= 0) { int ci = q->conn; K[ci].req = -1; q->conn = -1; conn_close(ci); }
            on_done(e.id, 0, NULL, 0, E_TIMEOUT, now);
        }
        drain_ready();
        /* the ticker */
        now = mono();
        if (now >= next_tick) {
            uint32_t oldest;
            loop_lag(next_tick, now, (int)w_len());
            if (w_oldest(&oldest)) h_add(1, clampsec(now - t0), (now - R[oldest].intended) * 1e6);
            if (got_signal) stop("stop_event");
            if (!stopping) {
                if (now >= end_sending) stop("duration");
                else if (sent >= C.max_requests) stop("max_requests");
                else if (arrivals_done && active == 0) stop("sessions_done");
            }
            if (now >= next_house) {
                next_house = now + HOUSE_S;
                long long done = 0, ok = 0;
                for (int a = 0; a < C.nact; a++) { done += AS[a].count; ok += AS[a].ok; }
                printf("live %lld %lld %lld\n", done, ok, active);
                fflush(stdout);
            }
            if (stopping) {
                if (drain_deadline < 0) {
                    think_heap.n = 0; /* no think time ends any more */
                    double d = now + C.timeout + 0.05;
                    drain_deadline = d < hard_end ? d : hard_end;
                    if (!strcmp(stop_reason, "stop_event") && now + 0.5 < drain_deadline) drain_deadline = now + 0.5;
                }
                if (inflight <= 0 || now >= drain_deadline) break;
            }
            if (now >= hard_end) { stop("hard_limit"); break; }
            next_tick = now + TICK_S;
        }
        /* wait for I/O or the next timer */
        double wake = next_tick;
        if (!stopping && next_arr < C.narr && t0 + C.arr_t[next_arr] - EARLY_S < wake) wake = t0 + C.arr_t[next_arr] - EARLY_S;
        if (!stopping && think_heap.n && think_heap.e[0].t - EARLY_S < wake) wake = think_heap.e[0].t - EARLY_S;
        if (heap_top(&patience_heap) < wake) wake = heap_top(&patience_heap);
        if (heap_top(&deadline_heap) < wake) wake = heap_top(&deadline_heap);
        double dt = wake - mono();
        if (dt < 0) dt = 0;
        struct timespec ts = {(time_t)dt, (long)((dt - (double)(time_t)dt) * 1e9)};
        int n = epoll_pwait2(epfd, evs, 512, &ts, NULL);
        if (n < 0 && errno == ENOSYS) n = epoll_wait(epfd, evs, 512, (int)ceil(dt * 1000.0));
        for (int i = 0; i < n; i++) {
            uint64_t d = evs[i].data.u64;
            if (d == UINT64_MAX) {
                char buf[256];
                ssize_t r = read(0, buf, sizeof buf);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                    if (ctl_open) { epoll_ctl(epfd, EPOLL_CTL_DEL, 0, NULL); ctl_open = 0; }
                    stop("stop_event");
                } else if (r > 0 && memmem(buf, (size_t)r, "stop", 4)) stop("stop_event");
                continue;
            }
            uint32_t ci = (uint32_t)d, gen = (uint32_t)(d >> 32);
            if (ci >= K_cap || K[ci].gen != gen || K[ci].state == CS_FREE) continue;
            conn_event((int)ci, evs[i].events);
        }
        drain_ready();
    }
    double end = mono();
    if (end > hard_end) end = hard_end;
    cpu_roll(end);
    /* everything still open ends as "other" (the run is over) */
    pool_closed = 1;
    for (uint32_t ci = 0; ci < K_cap; ci++) {
        if (K[ci].state == CS_FREE) continue;
        int rid = K[ci].req >= 0 ? K[ci].req : -1;
        K[ci].req = -1;
        conn_close((int)ci);
        if (rid >= 0 && R[rid].live && !R[rid].done) on_done((uint32_t)rid, 0, NULL, 0, E_OTHER, end);
    }
    uint32_t rid;
    while (w_pop(&rid)) on_done(rid, 0, NULL, 0, E_OTHER, end);
    if (fclose(orders_out)) die("cannot write the orders file");
    write_results(argv[2], orders_path, end - t0);
    printf("done\n");
    fflush(stdout);
    return 0;
}
