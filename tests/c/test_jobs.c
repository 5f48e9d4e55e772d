/* The job API (callback-free streaming for frame loops), promise by promise.
 *
 *   usage: test_jobs MODEL.gguf
 *
 * The last line is "N passed, N failed". An alarm() guard turns any hang into a failure. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static const char *model_path;

static rigllama_engine *create_engine(void) {
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = model_path;
    rigllama_engine *engine = NULL;
    if (rigllama_engine_create(&options, &engine) != RIGLLAMA_STATUS_OK) {
        printf("FAIL: cannot create engine: %s\n", rigllama_last_error());
        exit(1);
    }
    return engine;
}

static rigllama_job *submit(rigllama_engine *engine, rigllama_request request) {
    rigllama_job *job = NULL;
    rigllama_status status = rigllama_engine_submit(engine, &request, &job);
    CHECK(status == RIGLLAMA_STATUS_OK && job != NULL, "submit %d", status);
    return job;
}

typedef struct {
    char text[8192];
    size_t len;
    int text_events, none_events, finals, events_after_final;
    int last_kind;
    rigllama_status last_status;
    double worst_poll_ms;
} drained;

/* Polls with timeout 0 until the final event, sleeping a little between empty polls. */
static void drain(rigllama_job *job, drained *d) {
    memset(d, 0, sizeof *d);
    rigllama_event event;
    rigllama_event_init(&event, sizeof event);
    double deadline = now_ms() + 60000 * time_scale();
    while (now_ms() < deadline) {
        double start = now_ms();
        rigllama_status status = rigllama_job_poll(job, 0, &event);
        double took = now_ms() - start;
        if (took > d->worst_poll_ms)
            d->worst_poll_ms = took;
        if (status != RIGLLAMA_STATUS_OK) {
            CHECK(0, "poll failed %d", status);
            return;
        }
        if (d->finals)
            d->events_after_final += event.kind != d->last_kind;
        if (event.kind == RIGLLAMA_EVENT_KIND_NONE) {
            d->none_events++;
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        } else if (event.kind == RIGLLAMA_EVENT_KIND_TEXT) {
            d->text_events++;
            CHECK(strlen(event.text) == event.text_len && event.text_len > 0, "text piece");
            if (d->len + event.text_len < sizeof d->text) {
                memcpy(d->text + d->len, event.text, event.text_len);
                d->len += event.text_len;
                d->text[d->len] = '\0';
            }
        } else {
            d->last_kind = event.kind;
            d->last_status = event.status;
            if (++d->finals == 3)
                return; /* the final event must repeat: poll it twice more */
        }
    }
    CHECK(0, "job did not finish within 60 s");
}

static void test_events_come_in_order_and_concatenate_to_complete_text(rigllama_engine *engine) {
    rigllama_request request = greedy("The old lighthouse keeper looked out at the storm and", 48);
    char *text = NULL;
    rigllama_engine_reset(engine);
    CHECK(rigllama_engine_complete(engine, &request, &text, NULL) == RIGLLAMA_STATUS_OK, "complete");
    rigllama_engine_reset(engine);
    rigllama_job *job = submit(engine, request);

    rigllama_usage usage;
    rigllama_usage_init(&usage, sizeof usage);
    CHECK(rigllama_job_usage(job, &usage) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "no usage before the end");

    drained d;
    drain(job, &d);
    CHECK(d.last_kind == RIGLLAMA_EVENT_KIND_DONE && d.last_status == RIGLLAMA_STATUS_OK, "DONE last");
    CHECK(d.finals == 3 && d.events_after_final == 0, "the final event repeats");
    CHECK(d.text_events > 5, "%d text events", d.text_events);
    CHECK(text && strcmp(d.text, text) == 0, "job text == complete text:\n[%s]\n[%s]", d.text, text ? text : "");
    CHECK(d.worst_poll_ms < 5.0 * time_scale(), "a timeout-0 poll took %.3f ms", d.worst_poll_ms);
    printf("  worst timeout-0 poll: %.1f us over %d polls\n", d.worst_poll_ms * 1e3,
           d.text_events + d.none_events + d.finals);
    CHECK(rigllama_job_usage(job, &usage) == RIGLLAMA_STATUS_OK, "usage after DONE");
    CHECK(usage.completion_tokens == 48 && usage.finish_reason == RIGLLAMA_FINISH_REASON_LENGTH, "usage %u", usage.completion_tokens);
    rigllama_job_free(job);
    rigllama_string_free(text);
}

static void test_job_cancel_mid_stream_ends_with_cancelled(rigllama_engine *engine) {
    rigllama_job *job = submit(engine, greedy("Once upon a time", RIGLLAMA_MAX_TOKENS_UNLIMITED));
    rigllama_event event;
    rigllama_event_init(&event, sizeof event);
    int texts = 0;
    while (texts < 5 && rigllama_job_poll(job, 1000, &event) == RIGLLAMA_STATUS_OK)
        texts += event.kind == RIGLLAMA_EVENT_KIND_TEXT;
    double start = now_ms();
    CHECK(rigllama_job_cancel(job) == RIGLLAMA_STATUS_OK, "cancel");
    do {
        CHECK(rigllama_job_poll(job, 1000, &event) == RIGLLAMA_STATUS_OK, "poll");
    } while (event.kind == RIGLLAMA_EVENT_KIND_TEXT || event.kind == RIGLLAMA_EVENT_KIND_NONE);
    CHECK(event.kind == RIGLLAMA_EVENT_KIND_ERROR && event.status == RIGLLAMA_STATUS_CANCELLED, "kind %d status %d", event.kind, event.status);
    CHECK(strlen(event.message) > 0, "a message");
    CHECK(now_ms() - start < 500 * time_scale(), "cancel took %.1f ms", now_ms() - start);
    rigllama_job_free(job);
}

static void test_freeing_a_job_mid_generation_frees_the_engine(rigllama_engine *engine) {
    rigllama_job *job = submit(engine, greedy("Once upon a time", RIGLLAMA_MAX_TOKENS_UNLIMITED));
    rigllama_event event;
    rigllama_event_init(&event, sizeof event);
    int texts = 0;
    while (texts < 3 && rigllama_job_poll(job, 1000, &event) == RIGLLAMA_STATUS_OK)
        texts += event.kind == RIGLLAMA_EVENT_KIND_TEXT;
    double start = now_ms();
    rigllama_job_free(job);
    rigllama_request next = greedy("Hello", 1);
    char *text = NULL;
    CHECK(rigllama_engine_complete(engine, &next, &text, NULL) == RIGLLAMA_STATUS_OK, "next request");
    double took = now_ms() - start;
    CHECK(took < 500 * time_scale(), "the next request finished %.1f ms after the free", took);
    rigllama_string_free(text);
}

typedef struct {
    rigllama_job *job;
    drained d;
} poll_thread_arg;

static void *poll_elsewhere(void *arg) {
    poll_thread_arg *a = arg;
    drain(a->job, &a->d);
    return NULL;
}

static void test_a_job_may_be_polled_from_another_thread(rigllama_engine *engine) {
    poll_thread_arg a;
    a.job = submit(engine, greedy("Hello there,", 12));
    pthread_t thread;
    pthread_create(&thread, NULL, poll_elsewhere, &a);
    pthread_join(thread, NULL);
    CHECK(a.d.last_kind == RIGLLAMA_EVENT_KIND_DONE && a.d.text_events > 0, "polled to DONE from another thread");
    rigllama_job_free(a.job);
}

typedef struct {
    rigllama_job *job;
    rigllama_status status;
    double took_ms;
} long_poll;

static void *poll_long(void *arg) {
    long_poll *p = arg;
    rigllama_event event;
    rigllama_event_init(&event, sizeof event);
    double start = now_ms();
    p->status = rigllama_job_poll(p->job, 1500, &event);
    p->took_ms = now_ms() - start;
    return NULL;
}

static void test_overlapping_polls_return_busy(rigllama_engine *engine) {
    /* The second job waits behind the first, so a poll of it blocks for its whole timeout. */
    rigllama_job *first = submit(engine, greedy("Once upon a time", RIGLLAMA_MAX_TOKENS_UNLIMITED));
    rigllama_job *second = submit(engine, greedy("Hello", 2));
    long_poll p = {second, -1, 0};
    pthread_t thread;
    pthread_create(&thread, NULL, poll_long, &p);
    struct timespec ts = {0, 300000000};
    nanosleep(&ts, NULL);
    rigllama_event event;
    rigllama_event_init(&event, sizeof event);
    CHECK(rigllama_job_poll(second, 0, &event) == RIGLLAMA_STATUS_BUSY, "overlapping poll");
    pthread_join(thread, NULL);
    CHECK(p.status == RIGLLAMA_STATUS_OK && p.took_ms >= 1400, "the long poll waited its timeout (%.0f ms)", p.took_ms);
    rigllama_job_free(first);
    drained d;
    drain(second, &d);
    CHECK(d.last_kind == RIGLLAMA_EVENT_KIND_DONE, "second job runs once the first is freed");
    rigllama_job_free(second);
}

typedef struct {
    rigllama_engine *engine;
    rigllama_job *job;
    double worst_ms;
    int calls;
} poll_in_callback;

static int32_t poll_queued_job(void *user_data, const char *piece, size_t len) {
    poll_in_callback *p = user_data;
    (void)piece;
    (void)len;
    if (p->job == NULL) {
        /* Submitted now, it waits behind this stream: a real wait would last 5 s. */
        rigllama_request later = greedy("Hello", 2);
        rigllama_engine_submit(p->engine, &later, &p->job);
        return 0;
    }
    rigllama_event event;
    rigllama_event_init(&event, sizeof event);
    double start = now_ms();
    rigllama_job_poll(p->job, 5000, &event);
    double took = now_ms() - start;
    if (took > p->worst_ms)
        p->worst_ms = took;
    return ++p->calls >= 3;
}

static void test_polling_inside_a_stream_callback_acts_as_timeout_zero(rigllama_engine *engine) {
    poll_in_callback p = {engine, NULL, 0, 0};
    rigllama_request request = greedy("Once upon a time", 50);
    CHECK(rigllama_engine_stream(engine, &request, poll_queued_job, &p, NULL) == RIGLLAMA_STATUS_OK, "stream");
    CHECK(p.job != NULL, "submit inside a callback works");
    CHECK(p.calls == 3 && p.worst_ms < 100 * time_scale(), "a poll inside the callback took %.1f ms", p.worst_ms);
    drained d;
    drain(p.job, &d);
    CHECK(d.last_kind == RIGLLAMA_EVENT_KIND_DONE, "the job runs after the stream");
    rigllama_job_free(p.job);
}

static void test_a_job_outlives_its_engine(void) {
    rigllama_engine *engine = create_engine();
    rigllama_job *running = submit(engine, greedy("Once upon a time", RIGLLAMA_MAX_TOKENS_UNLIMITED));
    rigllama_job *queued = submit(engine, greedy("Hello", 4));
    rigllama_event event;
    rigllama_event_init(&event, sizeof event);
    int texts = 0;
    while (texts < 2 && rigllama_job_poll(running, 1000, &event) == RIGLLAMA_STATUS_OK)
        texts += event.kind == RIGLLAMA_EVENT_KIND_TEXT;
    rigllama_engine_destroy(engine);
    drained d;
    drain(running, &d);
    CHECK(d.last_kind == RIGLLAMA_EVENT_KIND_ERROR && d.last_status == RIGLLAMA_STATUS_CANCELLED, "running job: kind %d status %d", d.last_kind, d.last_status);
    drain(queued, &d);
    CHECK(d.last_kind == RIGLLAMA_EVENT_KIND_ERROR && d.last_status == RIGLLAMA_STATUS_CANCELLED, "queued job: kind %d status %d", d.last_kind, d.last_status);
    rigllama_job_free(running);
    rigllama_job_free(queued);
}

static void test_null_arguments(rigllama_engine *engine) {
    rigllama_request request = greedy("Hello", 2);
    rigllama_job *job = (rigllama_job *)&request;
    rigllama_event event;
    rigllama_event_init(&event, sizeof event);
    rigllama_usage usage;
    rigllama_usage_init(&usage, sizeof usage);
    CHECK(rigllama_event_init(NULL, sizeof event) == RIGLLAMA_STATUS_NULL_ARGUMENT, "event_init");
    CHECK(rigllama_event_init(&event, 4) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "event_init small");
    rigllama_event_init(&event, sizeof event);
    CHECK(rigllama_engine_submit(NULL, &request, &job) == RIGLLAMA_STATUS_NULL_ARGUMENT, "submit engine");
    CHECK(job == NULL, "out_job NULL on failure");
    CHECK(rigllama_engine_submit(engine, NULL, &job) == RIGLLAMA_STATUS_NULL_ARGUMENT, "submit request");
    CHECK(rigllama_engine_submit(engine, &request, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "submit out");
    CHECK(rigllama_job_poll(NULL, 0, &event) == RIGLLAMA_STATUS_NULL_ARGUMENT, "poll job");
    job = submit(engine, request);
    CHECK(rigllama_job_poll(job, 0, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "poll out");
    CHECK(rigllama_job_usage(NULL, &usage) == RIGLLAMA_STATUS_NULL_ARGUMENT, "usage job");
    CHECK(rigllama_job_usage(job, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "usage out");
    CHECK(rigllama_job_cancel(NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "cancel");
    rigllama_job_free(NULL);
    rigllama_job_free(job);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    model_path = argv[1];
    guard_against_hangs(240);

    rigllama_engine *engine = create_engine();
    test_null_arguments(engine);
    test_events_come_in_order_and_concatenate_to_complete_text(engine);
    test_job_cancel_mid_stream_ends_with_cancelled(engine);
    test_freeing_a_job_mid_generation_frees_the_engine(engine);
    test_a_job_may_be_polled_from_another_thread(engine);
    test_overlapping_polls_return_busy(engine);
    test_polling_inside_a_stream_callback_acts_as_timeout_zero(engine);
    rigllama_engine_destroy(engine);
    test_a_job_outlives_its_engine();

    printf("test_jobs: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
