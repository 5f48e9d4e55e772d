/* `make bench-host`: rigllama as a guest in a host's process, in one run on the default model.
 *
 *   1. one engine generating alone, then two and three engines generating at once: aggregate
 *      and per-engine tok/s, against one alone and against a fair share of it;
 *   2. the CPU an idle engine burns in the 3 s after a reply;
 *   3. a 60 Hz loop on the main thread doing a fixed amount of CPU work per frame (calibrated
 *      to ~8 ms alone), while an engine generates through a job polled once per frame:
 *      median and p99 of the frame's work time, and the engine's tok/s, with no engine, with
 *      an engine at default settings, with n_threads = cores - 1, with thread_priority LOW,
 *      and with both.
 *
 * A benchmark, not a test: it prints figures and the targets' ratios, and fails only if
 * something does not run.
 *
 *   usage: bench_host MODEL.gguf */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "rigllama.h"

static const char *model_path;
static const char *prompt = "Write a long story about a lighthouse keeper and the storm that";
#define GEN_TOKENS 96

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void sleep_ms(double ms) {
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1e3), (long)(fmod(ms, 1e3) * 1e6)};
    nanosleep(&ts, NULL);
}

static int cores(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set);
    return (int)sysconf(_SC_NPROCESSORS_ONLN);
}

static rigllama_engine *create(int32_t n_threads, int32_t priority) {
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = model_path;
    options.n_threads = n_threads;
    options.thread_priority = priority;
    rigllama_engine *engine = NULL;
    if (rigllama_engine_create(&options, &engine) != RIGLLAMA_STATUS_OK) {
        fprintf(stderr, "create failed: %s\n", rigllama_last_error());
        exit(1);
    }
    return engine;
}

static rigllama_job *submit(rigllama_engine *engine, uint32_t max_tokens) {
    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    request.prompt = prompt;
    request.raw_prompt = 1;
    request.max_tokens = max_tokens;
    request.temperature = 0.0f;
    rigllama_job *job = NULL;
    if (rigllama_engine_submit(engine, &request, &job) != RIGLLAMA_STATUS_OK) {
        fprintf(stderr, "submit failed: %s\n", rigllama_last_error());
        exit(1);
    }
    return job;
}

/* Polls `job` once without waiting: 1 when it has ended (tokens added to *tokens). */
static int poll_once(rigllama_job *job, uint32_t *tokens) {
    rigllama_event event;
    rigllama_event_init(&event, sizeof event);
    for (;;) {
        if (rigllama_job_poll(job, 0, &event) != RIGLLAMA_STATUS_OK) {
            fprintf(stderr, "poll failed: %s\n", rigllama_last_error());
            exit(1);
        }
        switch (event.kind) {
        case RIGLLAMA_EVENT_KIND_NONE:
            return 0;
        case RIGLLAMA_EVENT_KIND_DONE: {
            rigllama_usage usage;
            rigllama_usage_init(&usage, sizeof usage);
            rigllama_job_usage(job, &usage);
            *tokens += usage.completion_tokens;
            return 1;
        }
        case RIGLLAMA_EVENT_KIND_ERROR:
            fprintf(stderr, "job failed: %s\n", event.text ? event.text : "");
            exit(1);
        default:
            break;
        }
    }
}

/* k engines generate GEN_TOKENS each, all submitted at once. Returns aggregate tok/s (all
 * tokens over the wall time until the last ends); per-engine tok/s into `each`. */
static double engines_at_once(int k, double *each) {
    rigllama_engine *engines[3];
    rigllama_job *jobs[3];
    uint32_t tokens[3] = {0};
    double ended[3] = {0};
    for (int i = 0; i < k; i++) {
        engines[i] = create(0, RIGLLAMA_THREAD_PRIORITY_NORMAL);
        /* Warm: the first decode of a context allocates. */
        rigllama_job *warm = submit(engines[i], 4);
        uint32_t ignored = 0;
        while (!poll_once(warm, &ignored))
            sleep_ms(1);
        rigllama_job_free(warm);
    }
    double start = now_ms();
    for (int i = 0; i < k; i++)
        jobs[i] = submit(engines[i], GEN_TOKENS);
    int left = k;
    while (left > 0) {
        for (int i = 0; i < k; i++) {
            if (!ended[i] && poll_once(jobs[i], &tokens[i])) {
                ended[i] = now_ms();
                left--;
            }
        }
        sleep_ms(1);
    }
    double last = 0, total = 0;
    for (int i = 0; i < k; i++) {
        each[i] = tokens[i] / ((ended[i] - start) / 1e3);
        total += tokens[i];
        if (ended[i] > last)
            last = ended[i];
        rigllama_job_free(jobs[i]);
        rigllama_engine_destroy(engines[i]);
    }
    return total / ((last - start) / 1e3);
}

static double process_cpu_ms(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e3 +
           (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e3;
}

static double idle_cpu_percent(void) {
    rigllama_engine *engine = create(0, RIGLLAMA_THREAD_PRIORITY_NORMAL);
    rigllama_job *job = submit(engine, 32);
    uint32_t tokens = 0;
    while (!poll_once(job, &tokens))
        sleep_ms(1);
    rigllama_job_free(job);
    double before = process_cpu_ms();
    sleep_ms(3000);
    double used = process_cpu_ms() - before;
    rigllama_engine_destroy(engine);
    return used / 3000 * 100;
}

/* The game's fixed work: `units` rounds of dependent floating-point arithmetic. */
static volatile double sink;
static void frame_work(long units) {
    double x = 1.0;
    for (long i = 0; i < units; i++)
        x = x * 1.0000001 + 0.0000001;
    sink = x;
}

static long calibrate_units(double target_ms) {
    long units = 100000;
    for (int round = 0; round < 20; round++) {
        double best = 1e9;
        for (int rep = 0; rep < 5; rep++) {
            double start = now_ms();
            frame_work(units);
            double took = now_ms() - start;
            if (took < best)
                best = took;
        }
        units = (long)(units * target_ms / best);
        if (fabs(best - target_ms) < 0.2)
            break;
    }
    return units;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    double median_ms, p99_ms, tok_s;
} frame_result;

#define FRAMES 360 /* 6 s at 60 Hz */

/* The 60 Hz loop; with an engine (n_threads, priority) unless `engine_on` is 0. */
static frame_result frame_loop(long units, int engine_on, int32_t n_threads, int32_t priority) {
    rigllama_engine *engine = NULL;
    rigllama_job *job = NULL;
    uint32_t tokens = 0;
    if (engine_on) {
        engine = create(n_threads, priority);
        job = submit(engine, 100000);
    }
    static double work[FRAMES];
    const double frame_ms = 1e3 / 60;
    double next = now_ms(), start = next;
    for (int f = 0; f < FRAMES; f++) {
        if (job && poll_once(job, &tokens)) {
            rigllama_job_free(job);
            job = submit(engine, 100000);
        }
        double before = now_ms();
        frame_work(units);
        work[f] = now_ms() - before;
        next += frame_ms;
        sleep_ms(next - now_ms());
    }
    double elapsed = now_ms() - start;
    frame_result r = {0, 0, 0};
    if (job) {
        /* Tokens of the unfinished job: its usage so far. */
        rigllama_job_cancel(job);
        rigllama_event event;
        rigllama_event_init(&event, sizeof event);
        while (rigllama_job_poll(job, 100, &event) == RIGLLAMA_STATUS_OK &&
               event.kind != RIGLLAMA_EVENT_KIND_DONE && event.kind != RIGLLAMA_EVENT_KIND_ERROR) {
        }
        rigllama_usage usage;
        rigllama_usage_init(&usage, sizeof usage);
        rigllama_job_usage(job, &usage);
        tokens += usage.completion_tokens;
        rigllama_job_free(job);
        rigllama_engine_destroy(engine);
        r.tok_s = tokens / (elapsed / 1e3);
    }
    qsort(work, FRAMES, sizeof work[0], compare);
    r.median_ms = work[FRAMES / 2];
    r.p99_ms = work[(int)(FRAMES * 0.99)];
    return r;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    model_path = argv[1];
    int n = cores();
    printf("bench-host: %s, %d cores, %d tokens per engine, rigllama %s\n\n", model_path, n, GEN_TOKENS,
           rigllama_version());

    double each[3];
    double one = engines_at_once(1, each);
    printf("## Engines generating at once (default options)\n\n");
    printf("| engines | aggregate tok/s | vs one alone | per engine tok/s | worst vs fair share |\n|---|---|---|---|---|\n");
    printf("| 1 | %.1f | 1.00 | %.1f | 1.00 |\n", one, each[0]);
    for (int k = 2; k <= 3; k++) {
        double aggregate = engines_at_once(k, each);
        double worst = each[0];
        char per[128] = "";
        for (int i = 0; i < k; i++) {
            char piece[32];
            snprintf(piece, sizeof piece, "%s%.1f", i ? " / " : "", each[i]);
            strncat(per, piece, sizeof per - strlen(per) - 1);
            if (each[i] < worst)
                worst = each[i];
        }
        printf("| %d | %.1f | %.2f | %s | %.2f |\n", k, aggregate, aggregate / one, per, worst / (one / k));
    }

    double idle = idle_cpu_percent();
    printf("\n## Idle\n\nCPU in the 3 s after a reply: %.2f%% of one core\n", idle);

    long units = calibrate_units(8.0);
    printf("\n## A 60 Hz loop with ~8 ms of work per frame (%d frames each)\n\n", FRAMES);
    printf("| setting | median work ms | p99 work ms | median vs alone | tok/s | tok/s vs default |\n|---|---|---|---|---|---|\n");
    frame_result alone = frame_loop(units, 0, 0, 0);
    printf("| loop alone | %.2f | %.2f | 1.00 | - | - |\n", alone.median_ms, alone.p99_ms);
    frame_result def = frame_loop(units, 1, 0, RIGLLAMA_THREAD_PRIORITY_NORMAL);
    printf("| engine, default | %.2f | %.2f | %.2f | %.1f | 1.00 |\n", def.median_ms, def.p99_ms,
           def.median_ms / alone.median_ms, def.tok_s);
    struct {
        const char *name;
        int32_t n_threads, priority;
    } settings[] = {
        {"engine, n_threads = cores - 1", n > 1 ? n - 1 : 1, RIGLLAMA_THREAD_PRIORITY_NORMAL},
        {"engine, thread_priority LOW", 0, RIGLLAMA_THREAD_PRIORITY_LOW},
        {"engine, LOW and cores - 1", n > 1 ? n - 1 : 1, RIGLLAMA_THREAD_PRIORITY_LOW},
    };
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        frame_result r = frame_loop(units, 1, settings[i].n_threads, settings[i].priority);
        printf("| %s | %.2f | %.2f | %.2f | %.1f | %.2f |\n", settings[i].name, r.median_ms, r.p99_ms,
               r.median_ms / alone.median_ms, r.tok_s, r.tok_s / def.tok_s);
    }
    return 0;
}
