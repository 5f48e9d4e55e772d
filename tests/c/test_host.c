/* A good guest in the host's process, promise by promise: engines in one process share the
 * cores (their computations take turns), a cancel or destroy of one lands while the other
 * computes, an idle engine's threads sleep, and thread_priority LOW reaches every thread an
 * engine starts (read back from /proc on Linux). Speeds are measured by `make bench-host`.
 *
 *   usage: test_host MODEL.gguf */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "check.h"

static const char *model_path;
static const char *prompt = "The old lighthouse keeper looked out at the storm and";

static rigllama_engine *create(int32_t priority) {
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = model_path;
    options.thread_priority = priority;
    rigllama_engine *engine = NULL;
    if (rigllama_engine_create(&options, &engine) != RIGLLAMA_STATUS_OK) {
        printf("FAIL: cannot create engine: %s\n", rigllama_last_error());
        exit(1);
    }
    return engine;
}

static rigllama_job *submit(rigllama_engine *engine, const char *text, uint32_t max_tokens) {
    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    request.prompt = text;
    request.raw_prompt = 1;
    request.max_tokens = max_tokens;
    request.temperature = 0.0f;
    rigllama_job *job = NULL;
    rigllama_status status = rigllama_engine_submit(engine, &request, &job);
    CHECK(status == RIGLLAMA_STATUS_OK && job != NULL, "submit %d", status);
    return job;
}

typedef struct {
    char text[8192];
    size_t len;
    int kind;                 /* the final event's kind */
    rigllama_status status;   /* its status (errors) */
    uint32_t completion_tokens;
} outcome;

/* Polls (with a short wait) until `job`'s final event; `first_text` returns after the first
 * text event instead. */
static void poll_job(rigllama_job *job, outcome *o, int first_text) {
    rigllama_event event;
    rigllama_event_init(&event, sizeof event);
    double deadline = now_ms() + 120000 * time_scale();
    while (now_ms() < deadline) {
        if (rigllama_job_poll(job, 50, &event) != RIGLLAMA_STATUS_OK) {
            CHECK(0, "poll failed");
            return;
        }
        if (event.kind == RIGLLAMA_EVENT_KIND_TEXT) {
            if (o->len + event.text_len < sizeof o->text) {
                memcpy(o->text + o->len, event.text, event.text_len);
                o->len += event.text_len;
                o->text[o->len] = 0;
            }
            if (first_text)
                return;
        } else if (event.kind == RIGLLAMA_EVENT_KIND_DONE || event.kind == RIGLLAMA_EVENT_KIND_ERROR) {
            o->kind = event.kind;
            o->status = event.status;
            rigllama_usage usage;
            rigllama_usage_init(&usage, sizeof usage);
            if (rigllama_job_usage(job, &usage) == RIGLLAMA_STATUS_OK)
                o->completion_tokens = usage.completion_tokens;
            return;
        }
    }
    CHECK(0, "the job did not end in time");
}

static void run_alone(const char *text, uint32_t max_tokens, outcome *o) {
    rigllama_engine *engine = create(RIGLLAMA_THREAD_PRIORITY_NORMAL);
    rigllama_job *job = submit(engine, text, max_tokens);
    memset(o, 0, sizeof *o);
    poll_job(job, o, 0);
    rigllama_job_free(job);
    rigllama_engine_destroy(engine);
}

static void test_two_engines_generating_at_once_both_finish_with_their_own_text(void) {
    const char *other = "Once upon a time, in a small village by the sea,";
    outcome alone_a, alone_b, a, b;
    run_alone(prompt, 32, &alone_a);
    run_alone(other, 32, &alone_b);
    rigllama_engine *ea = create(RIGLLAMA_THREAD_PRIORITY_NORMAL);
    rigllama_engine *eb = create(RIGLLAMA_THREAD_PRIORITY_NORMAL);
    rigllama_job *ja = submit(ea, prompt, 32);
    rigllama_job *jb = submit(eb, other, 32);
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    poll_job(jb, &b, 0);
    poll_job(ja, &a, 0);
    CHECK(a.kind == RIGLLAMA_EVENT_KIND_DONE && a.completion_tokens == 32, "engine A: kind %d, %u tokens", a.kind, a.completion_tokens);
    CHECK(b.kind == RIGLLAMA_EVENT_KIND_DONE && b.completion_tokens == 32, "engine B: kind %d, %u tokens", b.kind, b.completion_tokens);
    CHECK(strcmp(a.text, alone_a.text) == 0, "engine A's text equals its text alone");
    CHECK(strcmp(b.text, alone_b.text) == 0, "engine B's text equals its text alone");
    rigllama_job_free(ja);
    rigllama_job_free(jb);
    rigllama_engine_destroy(ea);
    rigllama_engine_destroy(eb);
}

static void test_cancel_and_destroy_of_one_engine_while_the_other_generates(void) {
    outcome alone;
    run_alone(prompt, 48, &alone);
    rigllama_engine *keeper = create(RIGLLAMA_THREAD_PRIORITY_NORMAL);
    rigllama_engine *other = create(RIGLLAMA_THREAD_PRIORITY_NORMAL);
    rigllama_job *kept = submit(keeper, prompt, 48);
    rigllama_job *cancelled = submit(other, prompt, 400);
    outcome c;
    memset(&c, 0, sizeof c);
    poll_job(cancelled, &c, 1);
    double at = now_ms();
    CHECK(rigllama_job_cancel(cancelled) == RIGLLAMA_STATUS_OK, "cancel");
    poll_job(cancelled, &c, 0);
    double took = now_ms() - at;
    CHECK(c.kind == RIGLLAMA_EVENT_KIND_ERROR && c.status == RIGLLAMA_STATUS_CANCELLED, "cancelled job ends CANCELLED (kind %d status %d)", c.kind, c.status);
    CHECK(took < 500 * time_scale(), "the cancel landed in %.0f ms", took);
    rigllama_job_free(cancelled);

    rigllama_job *lost = submit(other, prompt, 400);
    memset(&c, 0, sizeof c);
    poll_job(lost, &c, 1);
    at = now_ms();
    rigllama_engine_destroy(other);
    took = now_ms() - at;
    CHECK(took < 1000 * time_scale(), "destroy returned in %.0f ms", took);
    poll_job(lost, &c, 0);
    CHECK(c.kind == RIGLLAMA_EVENT_KIND_ERROR && c.status == RIGLLAMA_STATUS_CANCELLED, "the destroyed engine's job ends CANCELLED");
    rigllama_job_free(lost);

    outcome k;
    memset(&k, 0, sizeof k);
    poll_job(kept, &k, 0);
    CHECK(k.kind == RIGLLAMA_EVENT_KIND_DONE && strcmp(k.text, alone.text) == 0, "the other engine finished with its text alone");
    rigllama_job_free(kept);
    rigllama_engine_destroy(keeper);
}

static void test_pause_of_one_engine_does_not_block_the_other(void) {
    rigllama_engine *paused = create(RIGLLAMA_THREAD_PRIORITY_NORMAL);
    rigllama_engine *free_one = create(RIGLLAMA_THREAD_PRIORITY_NORMAL);
    rigllama_job *held = submit(paused, prompt, 64);
    rigllama_job *busy = submit(free_one, prompt, 400);
    double at = now_ms();
    CHECK(rigllama_engine_pause(paused) == RIGLLAMA_STATUS_OK, "pause");
    double took = now_ms() - at;
    CHECK(took < 500 * time_scale(), "pause returned in %.0f ms with the other engine generating", took);
    rigllama_job_free(busy);
    rigllama_job *quick = submit(free_one, "Hello", 6);
    outcome q;
    memset(&q, 0, sizeof q);
    poll_job(quick, &q, 0);
    CHECK(q.kind == RIGLLAMA_EVENT_KIND_DONE && q.completion_tokens == 6, "the other engine serves while one is paused");
    rigllama_job_free(quick);
    CHECK(rigllama_engine_resume(paused) == RIGLLAMA_STATUS_OK, "resume");
    outcome h;
    memset(&h, 0, sizeof h);
    poll_job(held, &h, 0);
    CHECK(h.kind == RIGLLAMA_EVENT_KIND_DONE && h.completion_tokens == 64, "the paused job finishes after resume");
    rigllama_job_free(held);
    rigllama_engine_destroy(paused);
    rigllama_engine_destroy(free_one);
}

static double process_cpu_ms(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e3 +
           (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e3;
}

static void test_an_idle_engine_sleeps_and_wakes_for_the_next_request(void) {
    rigllama_engine *engine = create(RIGLLAMA_THREAD_PRIORITY_NORMAL);
    outcome first, second;
    memset(&first, 0, sizeof first);
    memset(&second, 0, sizeof second);
    rigllama_job *job = submit(engine, prompt, 24);
    poll_job(job, &first, 0);
    rigllama_job_free(job);
    double before = process_cpu_ms();
    struct timespec second_long = {1, 0};
    nanosleep(&second_long, NULL);
    double idle = process_cpu_ms() - before;
    CHECK(idle < 30 * time_scale(), "CPU while idle for 1 s after a reply: %.1f ms", idle);
    /* From the same (empty) cache, so the batch shapes and the greedy text are the same. */
    CHECK(rigllama_engine_reset(engine) == RIGLLAMA_STATUS_OK, "reset");
    job = submit(engine, prompt, 24);
    poll_job(job, &second, 0);
    rigllama_job_free(job);
    CHECK(second.kind == RIGLLAMA_EVENT_KIND_DONE && strcmp(first.text, second.text) == 0, "the next request after idling gives the same text");
    rigllama_engine_destroy(engine);
}

/* Nice values of this process's threads named rigllama-worker (the worker; ggml's pool
 * threads inherit its name); returns how many were read. */
static int worker_nices(long *nices, int cap) {
    DIR *tasks = opendir("/proc/self/task");
    if (!tasks)
        return -1;
    int n = 0;
    struct dirent *entry;
    while ((entry = readdir(tasks)) != NULL && n < cap) {
        if (entry->d_name[0] == '.')
            continue;
        char path[300], comm[64] = {0}, stat[1024] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", entry->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (!fgets(comm, sizeof comm, f))
            comm[0] = 0;
        fclose(f);
        if (strncmp(comm, "rigllama-worker", 15) != 0)
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", entry->d_name);
        f = fopen(path, "r");
        if (!f)
            continue;
        size_t got = fread(stat, 1, sizeof stat - 1, f);
        fclose(f);
        stat[got] = 0;
        char *field = strrchr(stat, ')');
        if (!field)
            continue;
        field += 2; /* the state, the 3rd field */
        for (int i = 3; i < 19 && field; i++) {
            field = strchr(field, ' ');
            if (field)
                field++;
        }
        if (field)
            nices[n++] = strtol(field, NULL, 10);
    }
    closedir(tasks);
    return n;
}

static void test_thread_priority_low_reaches_every_thread_the_engine_starts(void) {
    rigllama_engine *engine = create(RIGLLAMA_THREAD_PRIORITY_LOW);
    rigllama_job *job = submit(engine, prompt, 8);
    outcome o;
    memset(&o, 0, sizeof o);
    poll_job(job, &o, 0);
    rigllama_job_free(job);
    CHECK(o.kind == RIGLLAMA_EVENT_KIND_DONE, "a LOW engine generates");
    char *json = NULL;
    CHECK(rigllama_engine_describe(engine, &json) == RIGLLAMA_STATUS_OK, "describe");
    CHECK(json && strstr(json, "\"thread_priority\":\"low\"") && strstr(json, "\"thread_priority_applied\":true"), "describe: %s", json ? json : "(null)");
    rigllama_string_free(json);
    long nices[64];
    int n = worker_nices(nices, 64);
    int all_low = n > 1;
    for (int i = 0; i < n; i++)
        all_low = all_low && nices[i] == 19;
    CHECK(all_low, "%d rigllama-worker threads, all at nice 19", n);
    rigllama_engine_destroy(engine);

    engine = create(RIGLLAMA_THREAD_PRIORITY_NORMAL);
    job = submit(engine, prompt, 4);
    memset(&o, 0, sizeof o);
    poll_job(job, &o, 0);
    rigllama_job_free(job);
    n = worker_nices(nices, 64);
    int all_normal = n > 0;
    for (int i = 0; i < n; i++)
        all_normal = all_normal && nices[i] == 0;
    CHECK(all_normal, "%d rigllama-worker threads of a NORMAL engine, all at nice 0", n);
    rigllama_engine_destroy(engine);
}

static void test_a_bad_thread_priority_is_refused_naming_it(void) {
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    CHECK(options.thread_priority == RIGLLAMA_THREAD_PRIORITY_NORMAL, "init's thread_priority is NORMAL");
    options.model_path = model_path;
    options.thread_priority = 7;
    rigllama_engine *engine = NULL;
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_INVALID_ARGUMENT && engine == NULL, "thread_priority 7 refused");
    CHECK(strstr(rigllama_last_error(), "thread_priority 7") != NULL, "the message names it: %s", rigllama_last_error());
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    model_path = argv[1];
    guard_against_hangs(280);
    test_a_bad_thread_priority_is_refused_naming_it();
    test_two_engines_generating_at_once_both_finish_with_their_own_text();
    test_cancel_and_destroy_of_one_engine_while_the_other_generates();
    test_pause_of_one_engine_does_not_block_the_other();
    test_an_idle_engine_sleeps_and_wakes_for_the_next_request();
    test_thread_priority_low_reaches_every_thread_the_engine_starts();
    printf("test_host: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
