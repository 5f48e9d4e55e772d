/* Many conversations at once through the C ABI (options.n_seq, request.priority,
 * rigllama_engine_pause/resume), promise by promise, mirroring tests/batching.rs.
 *
 *   usage: test_batching MODEL.gguf [SECOND_MODEL.gguf]
 *
 * Jobs are polled round-robin from one thread, as a game's frame loop would. The last line is
 * "test_batching: N passed, N failed". An alarm() guard turns any hang into a failure. */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static const char *model_path;

/* The frozen v0.1 size of rigllama_request on 64-bit targets (tests/abi/rigllama-v0.1.h). */
#define REQUEST_V0_1_SIZE 80

static rigllama_engine *engine_with(uint32_t n_seq) {
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = model_path;
    options.n_seq = n_seq;
    rigllama_engine *engine = NULL;
    if (rigllama_engine_create(&options, &engine) != RIGLLAMA_STATUS_OK) {
        printf("FAIL: cannot create an engine with n_seq %u: %s\n", n_seq, rigllama_last_error());
        exit(1);
    }
    return engine;
}

static void sleep_ms(double ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)((ms - (time_t)(ms / 1000) * 1000) * 1e6)};
    nanosleep(&ts, NULL);
}

/* A story prompt that keeps a small model talking well past max_tokens. */
static char story_text[8][128];
static rigllama_request story(int i, uint32_t max_tokens) {
    snprintf(story_text[i % 8], sizeof story_text[0],
             "Chapter %d. The old sailor looked at the sea and began his long tale:", i);
    return greedy(story_text[i % 8], max_tokens);
}

static rigllama_job *submit(rigllama_engine *engine, rigllama_request request) {
    rigllama_job *job = NULL;
    rigllama_status status = rigllama_engine_submit(engine, &request, &job);
    CHECK(status == RIGLLAMA_STATUS_OK && job != NULL, "submit %d", status);
    return job;
}

/* What one job did, as seen by the polling thread. `seq` numbers every event the poller saw
 * across all jobs, so "before" means "polled earlier". */
typedef struct {
    rigllama_job *job;
    int texts;
    int first_text_seq, final_seq; /* 0 = not yet */
    double first_text_ms, final_ms;
    int final_kind;
    rigllama_status final_status;
    rigllama_usage usage; /* after DONE */
} tracked;

static int event_seq;

static void track(tracked *t, rigllama_job *job) {
    memset(t, 0, sizeof *t);
    t->job = job;
    rigllama_usage_init(&t->usage, sizeof t->usage);
}

/* Drains what is ready for one job without blocking; returns the number of events taken. */
static int poll_ready(tracked *t) {
    if (t->final_seq)
        return 0;
    rigllama_event event;
    rigllama_event_init(&event, sizeof event);
    int taken = 0;
    for (;;) {
        rigllama_status status = rigllama_job_poll(t->job, 0, &event);
        if (status != RIGLLAMA_STATUS_OK) {
            CHECK(0, "poll failed %d", status);
            t->final_seq = ++event_seq;
            t->final_kind = RIGLLAMA_EVENT_KIND_ERROR;
            t->final_status = status;
            return taken;
        }
        if (event.kind == RIGLLAMA_EVENT_KIND_NONE)
            return taken;
        taken++;
        if (event.kind == RIGLLAMA_EVENT_KIND_TEXT) {
            if (t->texts++ == 0) {
                t->first_text_seq = ++event_seq;
                t->first_text_ms = now_ms();
            }
            continue;
        }
        t->final_seq = ++event_seq;
        t->final_ms = now_ms();
        t->final_kind = event.kind;
        t->final_status = event.status;
        if (event.kind == RIGLLAMA_EVENT_KIND_DONE)
            CHECK(rigllama_job_usage(t->job, &t->usage) == RIGLLAMA_STATUS_OK, "usage after DONE");
        return taken;
    }
}

/* Polls every job round-robin until all have ended (or the deadline passes). */
static void poll_all(tracked *jobs, int n, double timeout_ms) {
    double deadline = now_ms() + timeout_ms * time_scale();
    for (;;) {
        int open = 0, taken = 0;
        for (int i = 0; i < n; i++) {
            taken += poll_ready(&jobs[i]);
            open += jobs[i].final_seq == 0;
        }
        if (open == 0)
            return;
        if (now_ms() > deadline) {
            CHECK(0, "%d jobs still running after %.0f ms", open, timeout_ms);
            return;
        }
        if (taken == 0)
            sleep_ms(1);
    }
}

/* Polls round-robin for `ms`, returning how many TEXT events arrived. */
static int poll_for(tracked *jobs, int n, double ms) {
    int before = 0, after = 0;
    for (int i = 0; i < n; i++)
        before += jobs[i].texts;
    double until = now_ms() + ms;
    while (now_ms() < until) {
        int taken = 0;
        for (int i = 0; i < n; i++)
            taken += poll_ready(&jobs[i]);
        if (taken == 0)
            sleep_ms(1);
    }
    for (int i = 0; i < n; i++)
        after += jobs[i].texts;
    return after - before;
}

static void free_all(tracked *jobs, int n) {
    for (int i = 0; i < n; i++)
        rigllama_job_free(jobs[i].job);
}

static int done_with(const tracked *t, uint32_t completion_tokens) {
    return t->final_kind == RIGLLAMA_EVENT_KIND_DONE && t->usage.completion_tokens == completion_tokens &&
           t->usage.finish_reason == RIGLLAMA_FINISH_REASON_LENGTH;
}

/* ---- promises ------------------------------------------------------------------------ */

static void test_four_jobs_advance_together_and_finish_with_full_counts(void) {
    rigllama_engine *engine = engine_with(4);
    tracked jobs[4];
    double started = now_ms();
    for (int i = 0; i < 4; i++)
        track(&jobs[i], submit(engine, story(i, 48)));
    poll_all(jobs, 4, 30000);
    int last_first_text = 0, first_final = 1 << 30;
    for (int i = 0; i < 4; i++) {
        CHECK(done_with(&jobs[i], 48), "job %d: kind %d, %u tokens, finish %d", i, jobs[i].final_kind,
              jobs[i].usage.completion_tokens, jobs[i].usage.finish_reason);
        CHECK(jobs[i].usage.prompt_tokens > 10, "job %d: prompt_tokens %u", i, jobs[i].usage.prompt_tokens);
        if (jobs[i].first_text_seq > last_first_text)
            last_first_text = jobs[i].first_text_seq;
        if (jobs[i].final_seq < first_final)
            first_final = jobs[i].final_seq;
    }
    CHECK(last_first_text < first_final, "every job's first TEXT came before the first DONE (%d vs %d): they ran together",
          last_first_text, first_final);
    printf("  four jobs of 48 tokens at once: %.0f ms\n", now_ms() - started);
    free_all(jobs, 4);
    rigllama_engine_destroy(engine);
}

static void test_a_high_priority_job_finishes_before_the_low_ones_which_lose_nothing(void) {
    rigllama_engine *engine = engine_with(4);
    tracked jobs[5]; /* 0..3 low, 4 urgent */
    for (int i = 0; i < 4; i++)
        track(&jobs[i], submit(engine, story(i, 64)));
    /* Let the low ones start generating: every one has sent text. */
    double deadline = now_ms() + 20000 * time_scale();
    for (;;) {
        poll_for(jobs, 4, 20);
        int started = 0;
        for (int i = 0; i < 4; i++)
            started += jobs[i].texts > 0;
        if (started == 4 || now_ms() > deadline)
            break;
    }
    rigllama_request urgent;
    rigllama_request_init(&urgent, sizeof urgent);
    urgent.prompt = "Player: where is the exit?";
    urgent.temperature = 0.0f;
    urgent.max_tokens = 8;
    urgent.priority = 10;
    double submitted = now_ms();
    track(&jobs[4], submit(engine, urgent));
    poll_all(jobs, 5, 30000);
    CHECK(jobs[4].final_kind == RIGLLAMA_EVENT_KIND_DONE, "urgent job: kind %d status %d", jobs[4].final_kind,
          jobs[4].final_status);
    for (int i = 0; i < 4; i++) {
        CHECK(jobs[4].final_seq < jobs[i].final_seq, "the urgent job ended before low job %d", i);
        CHECK(done_with(&jobs[i], 64), "low job %d: kind %d, %u tokens (nothing lost to the pause)", i,
              jobs[i].final_kind, jobs[i].usage.completion_tokens);
        CHECK(jobs[i].texts > 0, "low job %d delivered text", i);
    }
    printf("  urgent job (priority 10) done %.0f ms after submission, with four running\n",
           jobs[4].final_ms - submitted);
    free_all(jobs, 5);
    rigllama_engine_destroy(engine);
}

static void test_cancelling_one_of_four_ends_it_within_half_a_second(void) {
    rigllama_engine *engine = engine_with(4);
    tracked jobs[4];
    for (int i = 0; i < 4; i++)
        track(&jobs[i], submit(engine, story(i, 96)));
    tracked *victim = &jobs[1];
    double deadline = now_ms() + 20000 * time_scale();
    while (victim->texts == 0 && victim->final_seq == 0 && now_ms() < deadline)
        poll_for(jobs, 4, 5);
    CHECK(victim->texts > 0, "the victim produced text before the cancel");
    double cancelled_at = now_ms();
    CHECK(rigllama_job_cancel(victim->job) == RIGLLAMA_STATUS_OK, "job_cancel");
    while (victim->final_seq == 0 && now_ms() < cancelled_at + 5000 * time_scale())
        poll_for(jobs, 4, 1);
    double latency = victim->final_ms - cancelled_at;
    CHECK(victim->final_kind == RIGLLAMA_EVENT_KIND_ERROR && victim->final_status == RIGLLAMA_STATUS_CANCELLED,
          "victim: kind %d status %d", victim->final_kind, victim->final_status);
    CHECK(latency < 500 * time_scale(), "cancel took %.1f ms with four running", latency);
    printf("  cancel latency with four running: %.1f ms\n", latency);
    poll_all(jobs, 4, 30000);
    for (int i = 0; i < 4; i++)
        if (i != 1)
            CHECK(done_with(&jobs[i], 96), "job %d: kind %d, %u tokens", i, jobs[i].final_kind,
                  jobs[i].usage.completion_tokens);
    free_all(jobs, 4);
    rigllama_engine_destroy(engine);
}

static void test_pause_holds_every_job_and_resume_continues_them(void) {
    rigllama_engine *engine = engine_with(4);
    tracked jobs[4]; /* 0, 1 running; 2 submitted while paused; 3 submitted and cancelled while paused */
    for (int i = 0; i < 2; i++)
        track(&jobs[i], submit(engine, story(i, 48)));
    double deadline = now_ms() + 20000 * time_scale();
    while (jobs[0].texts + jobs[1].texts < 4 && now_ms() < deadline)
        poll_for(jobs, 2, 5);

    double started = now_ms();
    CHECK(rigllama_engine_pause(engine) == RIGLLAMA_STATUS_OK, "pause");
    double pause_took = now_ms() - started;
    printf("  pause returned in %.1f ms\n", pause_took);
    CHECK(pause_took < 500 * time_scale(), "pause took %.1f ms", pause_took);
    CHECK(rigllama_engine_pause(engine) == RIGLLAMA_STATUS_OK, "pausing a paused engine is a no-op");
    /* Pieces already queued may still arrive; then nothing moves. */
    poll_for(jobs, 2, 100);
    int held = jobs[0].texts + jobs[1].texts;
    int moved = poll_for(jobs, 2, 400);
    CHECK(moved == 0, "%d TEXT events arrived in the 400 ms after pause", moved);
    CHECK(jobs[0].final_seq == 0 && jobs[1].final_seq == 0, "the paused jobs have not ended");

    /* Submitted while paused: waits. Cancelled while paused: ends at once, still paused. */
    track(&jobs[2], submit(engine, story(9, 4)));
    track(&jobs[3], submit(engine, story(10, 4)));
    CHECK(rigllama_job_cancel(jobs[3].job) == RIGLLAMA_STATUS_OK, "job_cancel while paused");
    moved = poll_for(jobs, 4, 300);
    CHECK(jobs[3].final_kind == RIGLLAMA_EVENT_KIND_ERROR && jobs[3].final_status == RIGLLAMA_STATUS_CANCELLED,
          "cancelled while paused: kind %d status %d", jobs[3].final_kind, jobs[3].final_status);
    CHECK(jobs[3].texts == 0, "the cancelled job sent no text");
    CHECK(moved == 0 && jobs[2].texts == 0 && jobs[2].final_seq == 0,
          "nothing ran while paused (%d TEXT events; the waiting job: %d texts, final %d)", moved, jobs[2].texts,
          jobs[2].final_kind);
    CHECK(jobs[0].texts + jobs[1].texts == held, "still held");

    CHECK(rigllama_engine_resume(engine) == RIGLLAMA_STATUS_OK, "resume");
    CHECK(rigllama_engine_resume(engine) == RIGLLAMA_STATUS_OK, "resuming a running engine is a no-op");
    poll_all(jobs, 4, 30000);
    CHECK(done_with(&jobs[0], 48) && done_with(&jobs[1], 48), "the paused jobs finished: %u and %u tokens",
          jobs[0].usage.completion_tokens, jobs[1].usage.completion_tokens);
    CHECK(done_with(&jobs[2], 4), "the job submitted while paused ran after resume: kind %d, %u tokens",
          jobs[2].final_kind, jobs[2].usage.completion_tokens);
    free_all(jobs, 4);
    rigllama_engine_destroy(engine);
}

typedef struct {
    rigllama_engine *engine;
    int index;
    int calls; /* atomic */
    rigllama_status status;
} streamer;

static int destroy_returned; /* atomic */
static int late_callbacks;   /* atomic */

static int32_t count_piece(void *user_data, const char *piece, size_t len) {
    streamer *s = user_data;
    (void)piece;
    (void)len;
    __atomic_fetch_add(&s->calls, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&destroy_returned, __ATOMIC_SEQ_CST))
        __atomic_fetch_add(&late_callbacks, 1, __ATOMIC_SEQ_CST);
    return 0;
}

static void *stream_story(void *arg) {
    streamer *s = arg;
    char prompt[128];
    snprintf(prompt, sizeof prompt, "Chapter %d. The old sailor looked at the sea and began his long tale:", s->index);
    rigllama_request request = greedy(prompt, 400);
    s->status = rigllama_engine_stream(s->engine, &request, count_piece, s, NULL);
    return NULL;
}

static void test_destroy_during_four_streams_returns_promptly_with_no_callback_after(void) {
    rigllama_engine *engine = engine_with(4);
    streamer streams[4];
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        streams[i] = (streamer){engine, i, 0, -1};
        pthread_create(&threads[i], NULL, stream_story, &streams[i]);
    }
    /* Every thread is inside stream (it has had callbacks) before the engine goes away. */
    double deadline = now_ms() + 20000 * time_scale();
    for (;;) {
        int streaming = 0;
        for (int i = 0; i < 4; i++)
            streaming += __atomic_load_n(&streams[i].calls, __ATOMIC_SEQ_CST) >= 2;
        if (streaming == 4 || now_ms() > deadline)
            break;
        sleep_ms(5);
    }
    double started = now_ms();
    rigllama_engine_destroy(engine);
    __atomic_store_n(&destroy_returned, 1, __ATOMIC_SEQ_CST);
    double took = now_ms() - started;
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        CHECK(streams[i].status == RIGLLAMA_STATUS_CANCELLED, "stream %d returned %d", i, streams[i].status);
    }
    printf("  destroy during four streams took %.1f ms\n", took);
    CHECK(took < 500 * time_scale(), "destroy took %.1f ms", took);
    CHECK(__atomic_load_n(&late_callbacks, __ATOMIC_SEQ_CST) == 0, "%d callbacks ran after destroy returned",
          late_callbacks);
}

static void test_n_seq_out_of_range_and_null_engines_are_refused(void) {
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    CHECK(options.n_seq == 1, "n_seq defaults to 1 (got %u)", options.n_seq);
    options.model_path = model_path;
    rigllama_engine *engine = (rigllama_engine *)&options;
    options.n_seq = 0;
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "n_seq 0");
    CHECK(engine == NULL, "no engine on failure");
    CHECK(strstr(rigllama_last_error(), "n_seq 0") != NULL, "names the value: %s", rigllama_last_error());
    options.n_seq = 65;
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "n_seq 65");
    CHECK(strstr(rigllama_last_error(), "n_seq 65") != NULL, "names the value: %s", rigllama_last_error());
    CHECK(rigllama_engine_pause(NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "pause(NULL)");
    CHECK(rigllama_engine_resume(NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "resume(NULL)");

    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    CHECK(request.priority == 0, "priority defaults to 0 (got %d)", request.priority);
}

/* A program built against the v0.1 header passes an 80-byte request: the library must not
 * read the priority field (here full of garbage) and must run it at the default priority 0. */
static void test_a_v0_1_sized_request_works_at_the_default_priority(void) {
    rigllama_engine *engine = engine_with(4);
    union {
        rigllama_request request;
        unsigned char bytes[sizeof(rigllama_request)];
    } old;
    memset(old.bytes, 0x5A, sizeof old.bytes); /* garbage beyond struct_size */
    CHECK(rigllama_request_init(&old.request, REQUEST_V0_1_SIZE) == RIGLLAMA_STATUS_OK, "init at the v0.1 size");
    CHECK(old.request.struct_size == REQUEST_V0_1_SIZE, "struct_size %u", old.request.struct_size);
    CHECK(old.request.priority == 0x5A5A5A5A, "init wrote nothing past 80 bytes");
    old.request.prompt = "The lighthouse keeper climbed the stairs and";
    old.request.raw_prompt = 1;
    old.request.temperature = 0.0f;
    old.request.max_tokens = 8;

    rigllama_request current = greedy(old.request.prompt, 8);
    char *expected = NULL, *text = NULL;
    rigllama_usage usage;
    rigllama_usage_init(&usage, sizeof usage);
    CHECK(rigllama_engine_complete(engine, &current, &expected, NULL) == RIGLLAMA_STATUS_OK, "current-size complete");
    CHECK(rigllama_engine_complete(engine, &old.request, &text, &usage) == RIGLLAMA_STATUS_OK, "v0.1-size complete");
    CHECK(text && expected && strcmp(text, expected) == 0, "same greedy text: [%s] vs [%s]", text ? text : "",
          expected ? expected : "");
    CHECK(usage.completion_tokens == 8, "%u tokens", usage.completion_tokens);
    rigllama_string_free(text);
    rigllama_string_free(expected);

    /* With four low (priority 0) jobs running, a job at 0x5A5A5A5A would take a sequence at
     * once; at priority 0 it waits for a free one, so a low job ends first. */
    tracked jobs[5];
    for (int i = 0; i < 4; i++)
        track(&jobs[i], submit(engine, story(i, 24)));
    double deadline = now_ms() + 20000 * time_scale();
    for (;;) {
        poll_for(jobs, 4, 10);
        int started = 0;
        for (int i = 0; i < 4; i++)
            started += jobs[i].texts > 0;
        if (started == 4 || now_ms() > deadline)
            break;
    }
    rigllama_job *job = NULL;
    CHECK(rigllama_engine_submit(engine, &old.request, &job) == RIGLLAMA_STATUS_OK, "v0.1-size submit");
    track(&jobs[4], job);
    poll_all(jobs, 5, 30000);
    CHECK(done_with(&jobs[4], 8), "v0.1-size job: kind %d, %u tokens", jobs[4].final_kind,
          jobs[4].usage.completion_tokens);
    int first_low = 1 << 30;
    for (int i = 0; i < 4; i++) {
        CHECK(done_with(&jobs[i], 24), "low job %d: %u tokens", i, jobs[i].usage.completion_tokens);
        if (jobs[i].final_seq < first_low)
            first_low = jobs[i].final_seq;
    }
    CHECK(first_low < jobs[4].final_seq, "the v0.1-size job waited its turn (priority 0), not priority 0x5A5A5A5A");
    free_all(jobs, 5);
    rigllama_engine_destroy(engine);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [SECOND_MODEL.gguf]\n", argv[0]);
        return 2;
    }
    model_path = argv[1];
    double started = now_ms();
    guard_against_hangs(240);
    /* The struct grew at its end only: v0.1 fields keep their offsets (x86-64 numbers). */
    CHECK(sizeof(void *) != 8 || (offsetof(rigllama_engine_options, n_seq) == 60 && offsetof(rigllama_request, priority) == 80),
          "n_seq at %zu, priority at %zu", offsetof(rigllama_engine_options, n_seq), offsetof(rigllama_request, priority));

    test_n_seq_out_of_range_and_null_engines_are_refused();
    test_four_jobs_advance_together_and_finish_with_full_counts();
    test_a_high_priority_job_finishes_before_the_low_ones_which_lose_nothing();
    test_cancelling_one_of_four_ends_it_within_half_a_second();
    test_pause_holds_every_job_and_resume_continues_them();
    test_destroy_during_four_streams_returns_promptly_with_no_callback_after();
    test_a_v0_1_sized_request_works_at_the_default_priority();

    printf("(%.1f s)\ntest_batching: %d passed, %d failed\n", (now_ms() - started) / 1e3, passed, failed);
    return failed == 0 ? 0 : 1;
}
