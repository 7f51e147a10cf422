/*
 * bench: nanoseconds per acquire+release pair through seatgate's C ABI, against a
 * baseline built the way FreeSWITCH's mod_hash counts limits, and against a bare
 * atomic counter as the hardware floor.
 *
 *   make bench        (build/bench/bench)
 *
 * Scenarios:
 *   a  one contended type: every thread takes and gives back a seat of the bare
 *      license type "callcenter" for its own users;
 *   b  a 3-type bundle: the profile "operator" = user + callcenter + extension.
 *
 * Implementations, each doing the same counting work per pair:
 *   seatgate     license_try_acquire + license_release (every return code checked),
 *                once per backend: memory (the in-process table), shm (the table
 *                shared by processes, in a file under /dev/shm) and, when
 *                SEATGATE_BENCH_REDIS_PORT names a redis-server on 127.0.0.1, redis
 *                (with the server's PING round trip measured in the same run);
 *   global lock  ONE pthread_rwlock_t taken for writing around a chained hash table
 *                of "realm_resource" -> {used, limit}, as mod_hash does for
 *                limit_incr/limit_release: hash each key, look it up, check
 *                used < limit, increment (1 key in scenario a, 3 keys in b);
 *   bare atomic  atomic_fetch_add + atomic_fetch_sub on one counter (scenario a) or
 *                on each of three counters on their own cache lines (scenario b).
 *
 * ns/op is the wall time of a run divided by the pairs each thread did: the time
 * one pair takes as seen by one thread while all the others run too. Each figure is
 * the median of REPS runs of a fixed iteration count, sized after a warm-up so that
 * one run takes about TARGET_S seconds.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "seatgate.h"

#define TARGET_S 0.4          /* seconds per measured run */
#define WARMUP_S 0.05         /* the warm-up runs until one takes this long */
#define REPS 3                /* measured runs per figure; the median is kept */
#define USERS_PER_THREAD 16   /* each thread logs its own users in and out in turn */
#define MAX_THREADS 256
#define LIMIT 1000000         /* high enough that nothing is ever refused */

enum impl { SEATGATE, GLOBAL_LOCK, BARE_ATOMIC, IMPLS };
enum backend { MEMORY, SHM, REDIS, BACKENDS };
enum scenario { ONE_TYPE, BUNDLE, SCENARIOS };

static const char *const scenario_name[SCENARIOS] = {
    "a: 1 type", "b: 3-type bundle",
};
/* What seatgate is asked for, and the baseline's keys, per scenario. */
static const char *const seatgate_profile[SCENARIOS] = {"callcenter", "operator"};
static const char *const baseline_keys[SCENARIOS][3] = {
    {"acme_callcenter", NULL, NULL},
    {"acme_user", "acme_callcenter", "acme_extension"},
};
static const int keys_per_op[SCENARIOS] = {1, 3};

static const char config_types[] =
    "# written by bench/bench.c\n"
    "[licensee]\n"
    "name = \"bench\"\n"
    "\n"
    "[licenses.user]\n"
    "limit = 1000000\n"
    "\n"
    "[licenses.callcenter]\n"
    "limit = 1000000\n"
    "\n"
    "[licenses.extension]\n"
    "limit = 1000000\n"
    "\n"
    "[profiles.operator]\n"
    "consumes = [\"user\", \"callcenter\", \"extension\"]\n";

/* ---- failing loudly ---- */

static void die(const char *what) {
    fprintf(stderr, "bench: %s\n", what);
    abort();
}

/* A seatgate call failed: print its detail (per thread, so from this thread). */
static void call_failed(const char *call, int32_t rc) {
    char detail[512] = "";
    license_last_error(detail, sizeof detail, NULL);
    fprintf(stderr, "bench: %s failed: %s (%" PRId32 "): %s\n", call, license_strerror(rc), rc,
            detail);
    abort();
}

/* ---- the global-lock baseline (mod_hash style) ---- */

#define BUCKETS 64

typedef struct counter_entry {
    struct counter_entry *next;
    uint64_t hash;
    uint32_t used;
    uint32_t limit;
    char key[64];
} counter_entry;

static struct {
    pthread_rwlock_t lock;
    counter_entry *bucket[BUCKETS];
} baseline = {.lock = PTHREAD_RWLOCK_INITIALIZER};

static uint64_t fnv1a(const char *s) {
    uint64_t h = 14695981039346656037u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211u;
    }
    return h;
}

static counter_entry *baseline_find(const char *key) {
    uint64_t h = fnv1a(key);
    for (counter_entry *e = baseline.bucket[h % BUCKETS]; e; e = e->next)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static void baseline_add(const char *key, uint32_t limit) {
    counter_entry *e = calloc(1, sizeof *e);
    if (!e)
        die("out of memory");
    snprintf(e->key, sizeof e->key, "%s", key);
    e->hash = fnv1a(key);
    e->limit = limit;
    e->next = baseline.bucket[e->hash % BUCKETS];
    baseline.bucket[e->hash % BUCKETS] = e;
}

/* All or nothing: 0 on success, -1 if a key is unknown or full. */
static int baseline_acquire(const char *const *keys, int n) {
    counter_entry *found[3];
    if (pthread_rwlock_wrlock(&baseline.lock) != 0)
        die("pthread_rwlock_wrlock failed");
    for (int k = 0; k < n; k++) {
        found[k] = baseline_find(keys[k]);
        if (!found[k] || found[k]->used >= found[k]->limit) {
            pthread_rwlock_unlock(&baseline.lock);
            return -1;
        }
    }
    for (int k = 0; k < n; k++)
        found[k]->used++;
    pthread_rwlock_unlock(&baseline.lock);
    return 0;
}

static int baseline_release(const char *const *keys, int n) {
    int rc = 0;
    if (pthread_rwlock_wrlock(&baseline.lock) != 0)
        die("pthread_rwlock_wrlock failed");
    for (int k = 0; k < n; k++) {
        counter_entry *e = baseline_find(keys[k]);
        if (!e || e->used == 0)
            rc = -1;
        else
            e->used--;
    }
    pthread_rwlock_unlock(&baseline.lock);
    return rc;
}

static void baseline_init(void) {
    /* The bench's keys and a few neighbours, as a PBX's limit table would hold. */
    static const char *const keys[] = {
        "acme_user", "acme_callcenter", "acme_extension", "acme_crm",
        "acme_chat", "acme_integration_1c", "globex_user", "globex_callcenter",
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        baseline_add(keys[i], LIMIT);
}

/* ---- the bare atomic floor ---- */

typedef struct {
    _Alignas(64) atomic_uint_fast64_t value;
} padded_counter;

static padded_counter floor_counter[3];

/* ---- workers ---- */

typedef struct {
    _Alignas(64) enum impl impl;
    enum scenario scenario;
    uint64_t iters;
    char users[USERS_PER_THREAD][32]; /* formatted once, before any timing */
} worker;

static worker workers[MAX_THREADS];
static pthread_barrier_t start_line;

static void run_seatgate(const worker *w) {
    const char *profile = seatgate_profile[w->scenario];
    for (uint64_t i = 0; i < w->iters; i++) {
        license_seat seat;
        int32_t rc = license_try_acquire(w->users[i % USERS_PER_THREAD], profile, &seat);
        if (rc != LICENSE_OK)
            call_failed("license_try_acquire", rc);
        rc = license_release(seat);
        if (rc != LICENSE_OK)
            call_failed("license_release", rc);
    }
}

static void run_global_lock(const worker *w) {
    const char *const *keys = baseline_keys[w->scenario];
    int n = keys_per_op[w->scenario];
    for (uint64_t i = 0; i < w->iters; i++) {
        if (baseline_acquire(keys, n) != 0)
            die("baseline acquire refused");
        if (baseline_release(keys, n) != 0)
            die("baseline release failed");
    }
}

static void run_bare_atomic(const worker *w) {
    int n = keys_per_op[w->scenario];
    for (uint64_t i = 0; i < w->iters; i++) {
        for (int k = 0; k < n; k++)
            atomic_fetch_add(&floor_counter[k].value, 1);
        for (int k = 0; k < n; k++)
            atomic_fetch_sub(&floor_counter[k].value, 1);
    }
}

static void *worker_main(void *arg) {
    const worker *w = arg;
    pthread_barrier_wait(&start_line);
    switch (w->impl) {
    case SEATGATE: run_seatgate(w); break;
    case GLOBAL_LOCK: run_global_lock(w); break;
    case BARE_ATOMIC: run_bare_atomic(w); break;
    default: die("unknown implementation");
    }
    return NULL;
}

static double now_s(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        die("clock_gettime failed");
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Every count must be back at zero after a run: nothing leaked, nothing refused. */
static void check_idle(void) {
    static const char *const types[] = {"user", "callcenter", "extension"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        uint32_t used, limit;
        int32_t rc = license_usage(types[i], &used, &limit);
        if (rc != LICENSE_OK)
            call_failed("license_usage", rc);
        if (used != 0 || limit != LIMIT) {
            fprintf(stderr, "bench: seatgate '%s' is %" PRIu32 "/%" PRIu32 " after a run\n",
                    types[i], used, limit);
            abort();
        }
    }
    for (int s = 0; s < SCENARIOS; s++)
        for (int k = 0; k < keys_per_op[s]; k++)
            if (baseline_find(baseline_keys[s][k])->used != 0)
                die("a baseline count is not 0 after a run");
    for (int k = 0; k < 3; k++)
        if (atomic_load(&floor_counter[k].value) != 0)
            die("a bare atomic counter is not 0 after a run");
}

/* One run: `threads` threads doing `iters` pairs each; returns the wall time. */
static double run_once(enum impl impl, enum scenario scenario, int threads, uint64_t iters) {
    pthread_t tid[MAX_THREADS];
    if (pthread_barrier_init(&start_line, NULL, (unsigned)threads + 1) != 0)
        die("pthread_barrier_init failed");
    for (int t = 0; t < threads; t++) {
        workers[t].impl = impl;
        workers[t].scenario = scenario;
        workers[t].iters = iters;
        int err = pthread_create(&tid[t], NULL, worker_main, &workers[t]);
        if (err != 0) {
            fprintf(stderr, "bench: pthread_create: %s\n", strerror(err));
            abort();
        }
    }
    pthread_barrier_wait(&start_line);
    double start = now_s();
    for (int t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
    double elapsed = now_s() - start;
    pthread_barrier_destroy(&start_line);
    check_idle();
    return elapsed;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ns per pair per thread: warm up, size the run to ~TARGET_S, median of REPS runs. */
static double measure(enum impl impl, enum scenario scenario, int threads) {
    uint64_t iters = 1000;
    double secs;
    for (;;) { /* warm-up, which also finds the speed */
        secs = run_once(impl, scenario, threads, iters);
        if (secs >= WARMUP_S)
            break;
        double grow = secs > 0 ? 1.5 * WARMUP_S / secs : 100.0;
        iters = (uint64_t)((double)iters * (grow > 100.0 ? 100.0 : grow < 2.0 ? 2.0 : grow));
    }
    uint64_t n = (uint64_t)((double)iters * TARGET_S / secs);
    if (n < 1000)
        n = 1000;
    double ns[REPS];
    for (int r = 0; r < REPS; r++)
        ns[r] = run_once(impl, scenario, threads, n) * 1e9 / (double)n;
    qsort(ns, REPS, sizeof ns[0], by_value);
    return ns[REPS / 2];
}

/* ---- main ---- */

static char config_path[512];
static char table_path[512];
static char config_text[4096];
static int redis_port;

static void remove_config(void) {
    if (config_path[0])
        unlink(config_path);
    if (table_path[0])
        unlink(table_path);
}

/* The backend section for `b`, then the types. */
static void compose_config(enum backend b) {
    char section[1024] = "";
    if (b == SHM) {
        snprintf(table_path, sizeof table_path, "/dev/shm/seatgate-bench-%ld", (long)getpid());
        snprintf(section, sizeof section,
                 "[backend]\nkind = \"shm\"\npath = \"%s\"\ncapacity = 20000\n\n", table_path);
    } else if (b == REDIS) {
        snprintf(section, sizeof section,
                 "[backend]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:%d\"\n"
                 "prefix = \"bench-%ld\"\ntimeout = \"2s\"\n\n",
                 redis_port, (long)getpid());
    }
    snprintf(config_text, sizeof config_text, "%s%s", section, config_types);
}

/* Round trip of one PING on a fresh connection to the bench's redis-server, in ns
   (median of 2000). */
static double redis_ping_ns(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket failed");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)redis_port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
        die("cannot connect to the bench redis-server");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    enum { N = 2000 };
    static double rtt[N];
    char buf[64];
    for (int i = 0; i < N; i++) {
        double start = now_s();
        if (write(fd, "PING\r\n", 6) != 6)
            die("PING write failed");
        ssize_t got = 0;
        while (got < 7) {
            ssize_t n = read(fd, buf + got, sizeof buf - (size_t)got);
            if (n <= 0)
                die("PING read failed");
            got += n;
        }
        rtt[i] = (now_s() - start) * 1e9;
    }
    close(fd);
    qsort(rtt, N, sizeof rtt[0], by_value);
    return rtt[N / 2];
}

static void write_config(void) {
    const char *dir = getenv("TMPDIR");
    if (config_path[0])
        unlink(config_path);
    snprintf(config_path, sizeof config_path, "%s/seatgate-bench-XXXXXX",
             dir && *dir ? dir : "/tmp");
    int fd = mkstemp(config_path);
    if (fd < 0) {
        fprintf(stderr, "bench: mkstemp %s: %s\n", config_path, strerror(errno));
        exit(1);
    }
    size_t len = strlen(config_text), done = 0;
    while (done < len) {
        ssize_t n = write(fd, config_text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "bench: write %s: %s\n", config_path, strerror(errno));
            exit(1);
        }
        done += (size_t)n;
    }
    if (close(fd) != 0) {
        fprintf(stderr, "bench: close %s: %s\n", config_path, strerror(errno));
        exit(1);
    }
}

int main(void) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int cores = online < 1 ? 1 : online > MAX_THREADS ? MAX_THREADS : (int)online;
    const char *port = getenv("SEATGATE_BENCH_REDIS_PORT");
    redis_port = port && *port ? atoi(port) : 0;
    int backends = redis_port > 0 ? BACKENDS : REDIS;
    atexit(remove_config);

    /* 1, 2, 4, 8 ... below the core count, then every core. */
    int counts[16], ncounts = 0;
    for (int n = 1; n < cores && ncounts < 15; n *= 2)
        counts[ncounts++] = n;
    counts[ncounts++] = cores;

    for (int t = 0; t < MAX_THREADS; t++)
        for (int u = 0; u < USERS_PER_THREAD; u++)
            snprintf(workers[t].users[u], sizeof workers[t].users[u], "agent-t%03d-u%02d", t, u);
    baseline_init();

    printf("seatgate %s bench: ns per acquire+release pair, per thread (median of %d runs "
           "of ~%.1f s)\n",
           license_version(), REPS, TARGET_S);
    printf("%d online cores; scenario a = bare type 'callcenter', b = profile 'operator' "
           "(user+callcenter+extension)\n",
           cores);
    double ping_ns = 0;
    if (redis_port > 0) {
        ping_ns = redis_ping_ns();
        printf("redis-server on 127.0.0.1:%d: PING round trip %.1f us (median of 2000, same run)\n",
               redis_port, ping_ns / 1000.0);
    } else {
        printf("(no redis row: run through `make bench`, which starts a redis-server, or set "
               "SEATGATE_BENCH_REDIS_PORT)\n");
    }
    printf("\n");

    double t0 = now_s();
    static double ns[BACKENDS + 2][SCENARIOS][16];
    for (int b = 0; b < backends; b++) {
        compose_config((enum backend)b);
        write_config();
        int32_t rc = license_init(config_path);
        if (rc != LICENSE_OK)
            call_failed("license_init", rc);
        uint32_t lints = 0;
        rc = license_lint_count(&lints);
        if (rc != LICENSE_OK)
            call_failed("license_lint_count", rc);
        if (lints != 0)
            die("the bench config has lints");
        for (int s = 0; s < SCENARIOS; s++)
            for (int c = 0; c < ncounts; c++)
                ns[b][s][c] = measure(SEATGATE, (enum scenario)s, counts[c]);
        license_shutdown();
    }
    /* check_idle reads seatgate's counts: keep an engine up for the baselines. */
    compose_config(MEMORY);
    write_config();
    int32_t rc = license_init(config_path);
    if (rc != LICENSE_OK)
        call_failed("license_init", rc);
    for (int s = 0; s < SCENARIOS; s++)
        for (int c = 0; c < ncounts; c++) {
            ns[BACKENDS][s][c] = measure(GLOBAL_LOCK, (enum scenario)s, counts[c]);
            ns[BACKENDS + 1][s][c] = measure(BARE_ATOMIC, (enum scenario)s, counts[c]);
        }
    license_shutdown();

    printf("%-18s %7s %10s %10s", "scenario", "threads", "memory", "shm");
    if (backends == BACKENDS)
        printf(" %10s", "redis");
    printf(" %12s %12s %12s %12s\n", "global lock", "bare atomic", "lock/memory", "shm/memory");
    for (int s = 0; s < SCENARIOS; s++) {
        for (int c = 0; c < ncounts; c++) {
            printf("%-18s %7d %10.1f %10.1f", scenario_name[s], counts[c], ns[MEMORY][s][c],
                   ns[SHM][s][c]);
            if (backends == BACKENDS)
                printf(" %10.1f", ns[REDIS][s][c]);
            printf(" %12.1f %12.1f %11.2fx %11.2fx\n", ns[BACKENDS][s][c], ns[BACKENDS + 1][s][c],
                   ns[BACKENDS][s][c] / ns[MEMORY][s][c], ns[SHM][s][c] / ns[MEMORY][s][c]);
        }
    }
    if (backends == BACKENDS)
        printf("\nredis: 1 thread, 1 type: %.1f us per acquire+release = %.2f PING round trips "
               "per call (two calls per pair)\n",
               ns[REDIS][ONE_TYPE][0] / 1000.0, ns[REDIS][ONE_TYPE][0] / 2.0 / ping_ns);
    printf("\n(ns/op columns, per thread; lock/memory > 1 means the in-process table is that many "
           "times faster than the global lock; shm/memory is what sharing the table between "
           "processes costs)\ntotal %.1f s\n",
           now_s() - t0);
    return 0;
}
