/* Small timing helpers for the benchmarks (compiled at set-up when a C compiler exists).
 *
 *   helper orphans N BATCH MARKER
 *       Creates N orphans: N/BATCH intermediate children each fork BATCH grandchildren that exit at
 *       once, then the intermediate exits, so its zombie grandchildren are reparented to the init or
 *       subreaper. After the last intermediate is reaped, writes the CLOCK_MONOTONIC time to MARKER
 *       and sleeps until killed.
 *   helper write NAME COUNT BLOCK STARTFILE
 *       Same output as writer.py: COUNT numbered 100-byte lines "NAME SEQ xxx...\n" on stdout, written in
 *       blocks of exactly BLOCK bytes (lines straddle blocks); CLOCK_MONOTONIC start time to STARTFILE.
 *   helper crash LOG RUN_SECONDS EXITCODE KEEP_AFTER
 *       Appends "S <monotonic>" to LOG, sleeps RUN_SECONDS, appends "E <monotonic>" and exits with
 *       EXITCODE. When LOG already holds KEEP_AFTER or more "S" lines (KEEP_AFTER > 0), it only appends
 *       its "S" line and sleeps until killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void append(const char *path, const char *tag, double t) {
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%s %.9f %d\n", tag, t, (int)getpid());
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0 || write(fd, buf, n) != n) { perror(path); exit(100); }
    close(fd);
}

static int count_starts(const char *path) {
    FILE *f = fopen(path, "r");
    int n = 0;
    char line[128];
    if (!f) return 0;
    while (fgets(line, sizeof line, f)) if (line[0] == 'S') n++;
    fclose(f);
    return n;
}

static void forever(void) { for (;;) pause(); }

static int writer(const char *name, long count, long block, const char *startfile) {
    enum { LINE = 100 };
    size_t head = strlen(name) + 1;
    if (head + 9 + 2 > LINE || block < 1) { fprintf(stderr, "bad name or block\n"); return 2; }
    char line[LINE];
    memcpy(line, name, head - 1);
    line[head - 1] = ' ';
    line[head + 9] = ' ';
    memset(line + head + 10, 'x', LINE - head - 11);
    line[LINE - 1] = '\n';
    char *buf = malloc(block + LINE);
    if (!buf) return 1;
    FILE *f = fopen(startfile, "w");
    if (!f) { perror(startfile); return 1; }
    fprintf(f, "%.9f\n", now());
    fclose(f);
    long used = 0;
    for (long seq = 0; seq < count || used > 0;) {
        while (seq < count && used < block) {
            long v = seq++;
            for (int i = 8; i >= 0; i--) { line[head + i] = '0' + v % 10; v /= 10; }
            memcpy(buf + used, line, LINE);
            used += LINE;
        }
        long n = used < block ? used : block;
        for (long off = 0; off < n;) {
            ssize_t w = write(1, buf + off, n - off);
            if (w < 0) { if (errno == EINTR) continue; perror("write"); return 1; }
            off += w;
        }
        memmove(buf, buf + n, used - n);
        used -= n;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "orphans") == 0) {
        long n = atol(argv[2]), batch = atol(argv[3]);
        if (batch < 1) batch = 1;
        for (long done = 0; done < n; done += batch) {
            long k = n - done < batch ? n - done : batch;
            pid_t mid = fork();
            if (mid < 0) { perror("fork"); return 1; }
            if (mid == 0) {
                for (long i = 0; i < k; i++) {
                    pid_t p = fork();
                    if (p == 0) _exit(0);
                    if (p < 0) { perror("fork"); _exit(1); }
                }
                _exit(0);
            }
            while (waitpid(mid, NULL, 0) < 0 && errno == EINTR) {}
        }
        append(argv[4], "D", now());
        forever();
    }
    if (argc == 6 && strcmp(argv[1], "crash") == 0) {
        double t = now();
        int keep_after = atoi(argv[5]);
        int starts = count_starts(argv[2]);
        append(argv[2], "S", t);
        if (keep_after > 0 && starts >= keep_after) forever();
        double run = atof(argv[3]);
        struct timespec ts = {(time_t)run, (long)((run - (time_t)run) * 1e9)};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
        append(argv[2], "E", now());
        return atoi(argv[4]);
    }
    if (argc == 6 && strcmp(argv[1], "write") == 0)
        return writer(argv[2], atol(argv[3]), atol(argv[4]), argv[5]);
    fprintf(stderr, "usage: helper write NAME COUNT BLOCK STARTFILE | helper orphans N BATCH MARKER | helper crash LOG RUN EXIT KEEP_AFTER\n");
    return 2;
}
