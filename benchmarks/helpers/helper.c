/* Small timing helpers for the benchmarks (compiled at set-up when a C compiler exists).
 *
 *   helper orphans N BATCH MARKER
 *       Creates N orphans: N/BATCH intermediate children each fork BATCH grandchildren that exit at
 *       once, then the intermediate exits, so its zombie grandchildren are reparented to the init or
 *       subreaper. After the last intermediate is reaped, writes the CLOCK_MONOTONIC time to MARKER
 *       and sleeps until killed.
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
    fprintf(stderr, "usage: helper orphans N BATCH MARKER | helper crash LOG RUN EXIT KEEP_AFTER\n");
    return 2;
}
