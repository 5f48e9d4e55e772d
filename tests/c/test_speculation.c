/* Prompt-lookup speculation through the C ABI (issue 15): rigllama_request.draft_max's
 * default and range, the usage counters and their struct_size rule, a copying reply that comes
 * in fewer decodes with the same text, the same reply through a job's events, and a cancel
 * in the middle of guessing (tests/speculation.rs shows the rest: stop strings, max_tokens,
 * grammar, seeded sampling, many sequences, the KV cache afterwards).
 *
 *   usage: test_speculation MODEL.gguf */
#include <string.h>

#include "check.h"

/* The model copies this paragraph with a wide margin at every token (tests/speculation.rs
 * measures the margins), so batched verification cannot flip a near tie here. */
static const char *COPY =
    "Copy the following paragraph exactly, word for word.\n\n"
    "The Harbor Street Library opened in 1911 with a collection of four thousand books donated "
    "by the town's shipping merchants. The original building was a single brick hall with tall "
    "windows facing the water. In 1952 a fire destroyed the reading room, and most of the "
    "maritime maps kept there were lost.";

static rigllama_request copy_request(uint32_t draft_max) {
    rigllama_request r;
    rigllama_request_init(&r, sizeof r);
    r.prompt = COPY;
    r.temperature = 0.0f;
    r.max_tokens = 80;
    /* The copy ends there; after it this small model rambles, with near ties. */
    static const char *const stop[] = {"lost."};
    r.stop = stop;
    r.n_stop = 1;
    r.draft_max = draft_max;
    return r;
}

static char *complete(rigllama_engine *engine, const rigllama_request *r, rigllama_usage *usage) {
    char *text = NULL;
    rigllama_usage_init(usage, sizeof *usage);
    CHECK(rigllama_engine_reset(engine) == RIGLLAMA_STATUS_OK, "reset");
    rigllama_status status = rigllama_engine_complete(engine, r, &text, usage);
    CHECK(status == RIGLLAMA_STATUS_OK && text, "complete: status %d", status);
    return text;
}

static void test_defaults_and_range(rigllama_engine *engine) {
    rigllama_request r;
    rigllama_request_init(&r, sizeof r);
    CHECK(r.draft_max == 0, "draft_max defaults to 0 (off): %u", r.draft_max);
    rigllama_usage u;
    rigllama_usage_init(&u, sizeof u);
    CHECK(u.drafted_tokens == 0 && u.accepted_tokens == 0, "usage_init zeroes the counters");

    r = greedy("x", 2);
    r.draft_max = 65;
    char *text = NULL;
    CHECK(rigllama_engine_complete(engine, &r, &text, NULL) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "65 refused");
    CHECK(text == NULL, "no text on failure");
    CHECK(strstr(rigllama_last_error(), "draft_max 65") != NULL, "message names the field: %s",
          rigllama_last_error());
    r.draft_max = 64;
    CHECK(rigllama_engine_complete(engine, &r, &text, NULL) == RIGLLAMA_STATUS_OK, "64 allowed");
    rigllama_string_free(text);
}

static void test_same_text_in_fewer_decodes(rigllama_engine *engine) {
    rigllama_request plain_request = copy_request(0), guessed_request = copy_request(8);
    rigllama_usage plain, guessed;
    char *plain_text = complete(engine, &plain_request, &plain);
    char *guessed_text = complete(engine, &guessed_request, &guessed);
    if (!plain_text || !guessed_text) {
        return;
    }
    CHECK(strcmp(plain_text, guessed_text) == 0, "same text:\n%s\n---\n%s", plain_text, guessed_text);
    CHECK(strstr(guessed_text, "four thousand books") != NULL, "the reply copies: %s", guessed_text);
    CHECK(plain.drafted_tokens == 0 && plain.accepted_tokens == 0, "off: %u drafted", plain.drafted_tokens);
    CHECK(guessed.completion_tokens == plain.completion_tokens, "tokens %u vs %u", guessed.completion_tokens,
          plain.completion_tokens);
    CHECK(guessed.accepted_tokens <= guessed.drafted_tokens, "accepted %u of %u", guessed.accepted_tokens,
          guessed.drafted_tokens);
    /* Most of the copy is guessed right: well over half the tokens cost no decode. */
    CHECK(guessed.accepted_tokens * 2 > guessed.completion_tokens, "accepted %u of %u tokens",
          guessed.accepted_tokens, guessed.completion_tokens);
    printf("  copy: %u tokens, %u drafted, %u accepted; %.1f ms plain, %.1f ms guessed\n",
           guessed.completion_tokens, guessed.drafted_tokens, guessed.accepted_tokens, plain.generation_ms,
           guessed.generation_ms);

    /* The same reply through a job: the TEXT events spell it, the usage matches. */
    CHECK(rigllama_engine_reset(engine) == RIGLLAMA_STATUS_OK, "reset");
    rigllama_job *job = NULL;
    CHECK(rigllama_engine_submit(engine, &guessed_request, &job) == RIGLLAMA_STATUS_OK && job, "submit");
    char joined[4096] = "";
    rigllama_event event;
    rigllama_event_init(&event, sizeof event);
    for (;;) {
        rigllama_status status = rigllama_job_poll(job, 10000, &event);
        CHECK(status == RIGLLAMA_STATUS_OK, "poll: %d", status);
        if (status != RIGLLAMA_STATUS_OK || event.kind == RIGLLAMA_EVENT_KIND_DONE ||
            event.kind == RIGLLAMA_EVENT_KIND_ERROR) {
            break;
        }
        if (event.kind == RIGLLAMA_EVENT_KIND_TEXT && strlen(joined) + event.text_len < sizeof joined) {
            strncat(joined, event.text, event.text_len);
        }
    }
    CHECK(event.kind == RIGLLAMA_EVENT_KIND_DONE, "job ended with %d", event.kind);
    CHECK(strcmp(joined, guessed_text) == 0, "job text:\n%s", joined);
    rigllama_usage job_usage;
    rigllama_usage_init(&job_usage, sizeof job_usage);
    CHECK(rigllama_job_usage(job, &job_usage) == RIGLLAMA_STATUS_OK, "job usage");
    CHECK(job_usage.drafted_tokens == guessed.drafted_tokens && job_usage.accepted_tokens == guessed.accepted_tokens,
          "job counters %u/%u", job_usage.accepted_tokens, job_usage.drafted_tokens);
    rigllama_job_free(job);

    /* A caller whose usage ends before accepted_tokens: drafted_tokens written, nothing after. */
    union {
        unsigned char bytes[sizeof(rigllama_usage)];
        rigllama_usage usage;
    } u;
    memset(&u, 0xEE, sizeof u);
    u.usage.struct_size = (uint32_t)offsetof(rigllama_usage, accepted_tokens);
    char *text = NULL;
    CHECK(rigllama_engine_reset(engine) == RIGLLAMA_STATUS_OK, "reset");
    CHECK(rigllama_engine_complete(engine, &guessed_request, &text, &u.usage) == RIGLLAMA_STATUS_OK, "complete");
    CHECK(u.usage.drafted_tokens == guessed.drafted_tokens, "drafted_tokens written: %u", u.usage.drafted_tokens);
    CHECK(u.bytes[offsetof(rigllama_usage, accepted_tokens)] == 0xEE, "nothing written past struct_size");
    rigllama_string_free(text);
    rigllama_string_free(plain_text);
    rigllama_string_free(guessed_text);
}

static void test_cancel_while_guessing(rigllama_engine *engine) {
    rigllama_request r = copy_request(8);
    r.max_tokens = 400;
    rigllama_job *job = NULL;
    CHECK(rigllama_engine_submit(engine, &r, &job) == RIGLLAMA_STATUS_OK && job, "submit");
    rigllama_event event;
    rigllama_event_init(&event, sizeof event);
    int texts = 0;
    double cancelled_at = 0;
    for (;;) {
        rigllama_status status = rigllama_job_poll(job, 10000, &event);
        if (status != RIGLLAMA_STATUS_OK || event.kind == RIGLLAMA_EVENT_KIND_DONE ||
            event.kind == RIGLLAMA_EVENT_KIND_ERROR) {
            break;
        }
        if (event.kind == RIGLLAMA_EVENT_KIND_TEXT && ++texts == 10) {
            cancelled_at = now_ms();
            rigllama_job_cancel(job);
        }
    }
    double waited = now_ms() - cancelled_at;
    CHECK(event.kind == RIGLLAMA_EVENT_KIND_ERROR && event.status == RIGLLAMA_STATUS_CANCELLED,
          "ended with kind %d status %d", event.kind, event.status);
    CHECK(waited < 1000 * time_scale(), "cancel took %.0f ms", waited);
    rigllama_job_free(job);
    /* The engine goes on serving. */
    rigllama_request next = greedy("The capital of France is", 4);
    char *text = NULL;
    CHECK(rigllama_engine_complete(engine, &next, &text, NULL) == RIGLLAMA_STATUS_OK && text, "after cancel");
    rigllama_string_free(text);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    guard_against_hangs(300);
    rigllama_engine *engine = default_engine(argv[1]);
    if (engine) {
        test_defaults_and_range(engine);
        test_same_text_in_fewer_decodes(engine);
        test_cancel_while_guessing(engine);
        rigllama_engine_destroy(engine);
    }
    printf("test_speculation: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
