/* rigllama through its C ABI, as a host uses it: prints one JSON object of measurements.
 *
 *   rigllama_bench MODEL speed REPS   prompt eval (pp64, pp512), generation (tg128), TTFT,
 *                                     callback path overhead, multi-turn TTFT (a short turn 1,
 *                                     and a ~1,500-token one), load time
 *   rigllama_bench MODEL rss N_CTX    peak RSS of one process doing pp + tg at that n_ctx
 *   rigllama_bench MODEL chat PROMPT N  one greedy chat reply streamed: generation tok/s
 *   rigllama_bench MODEL structured REPS
 *                                     the cost of constrained sampling: ms per generated token
 *                                     of the same chat request free, under a JSON Schema and
 *                                     under a GBNF grammar, greedy and sampled
 *   rigllama_bench MODEL kv REPS      per KV cache type and flash-attention setting (n_ctx 4096):
 *                                     the KV cache's bytes (describe), pp512 and tg128
 *   rigllama_bench MODEL batched NPL NPP NTG N_CTX
 *                                     aggregate generation speed with 1, 2, 4, ... concurrent
 *                                     streams (NPL "1,2,4,8"; n_seq = streams), each a distinct
 *                                     NPP-token prompt and NTG greedy tokens: llama.cpp's
 *                                     batched-bench measured through the public job API
 *
 * Every figure is measured by this process around the public API; the engine's own timings
 * (usage.prompt_ms, usage.generation_ms) are reported beside the wall-clock ones. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "rigllama.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *what) {
    fprintf(stderr, "rigllama_bench: %s: %s\n", what, rigllama_last_error());
    exit(1);
}

typedef struct {
    double started, first, last;
    int pieces;
} timing;

static int32_t on_piece(void *user_data, const char *piece, size_t len) {
    timing *t = user_data;
    (void)piece;
    (void)len;
    double now = now_ms();
    if (t->pieces++ == 0)
        t->first = now;
    t->last = now;
    return 0;
}

/* A raw prompt of exactly `tokens` tokens (BOS + repeated " the"), checked with count_tokens. */
static char *prompt_of(rigllama_engine *engine, int tokens) {
    char *text = malloc((size_t)tokens * 4 + 1);
    text[0] = '\0';
    for (int i = 0; i < tokens - 1; i++)
        strcat(text, " the");
    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    request.prompt = text;
    request.raw_prompt = 1;
    uint32_t counted = 0;
    if (rigllama_engine_count_tokens(engine, &request, &counted) != RIGLLAMA_STATUS_OK)
        die("count_tokens");
    if ((int)counted != tokens)
        fprintf(stderr, "rigllama_bench: prompt is %u tokens, wanted %d\n", counted, tokens);
    return text;
}

/* 0: greedy, as every figure but the sampled tg128; else the default sampling settings
 * (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05) with this seed. */
static uint32_t sampled_seed = 0;

static rigllama_usage run(rigllama_engine *engine, const char *prompt, const char *messages_json,
                          uint32_t max_tokens, timing *t) {
    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    request.prompt = prompt;
    request.messages_json = messages_json;
    request.raw_prompt = messages_json ? 0 : 1;
    request.temperature = 0.0f;
    if (sampled_seed) {
        rigllama_request defaults;
        rigllama_request_init(&defaults, sizeof defaults);
        request.temperature = defaults.temperature;
        request.seed = sampled_seed;
    }
    request.max_tokens = max_tokens;
    rigllama_usage usage;
    rigllama_usage_init(&usage, sizeof usage);
    memset(t, 0, sizeof *t);
    t->started = now_ms();
    if (rigllama_engine_stream(engine, &request, on_piece, t, &usage) != RIGLLAMA_STATUS_OK)
        die("stream");
    return usage;
}

/* An engine with the default options, or the bench stops. */
static rigllama_engine *create_default(const char *model) {
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = model;
    rigllama_engine *engine = NULL;
    if (rigllama_engine_create(&options, &engine) != RIGLLAMA_STATUS_OK)
        die("create");
    return engine;
}

static void print_array(const char *name, const double *values, int n, int last) {
    printf("  \"%s\": [", name);
    for (int i = 0; i < n; i++)
        printf("%s%.4f", i ? ", " : "", values[i]);
    printf("]%s\n", last ? "" : ",");
}

/* `text` as the inside of a JSON string: quotes, backslashes and control chars escaped. */
static void json_escape(const char *text, char *out, size_t size) {
    size_t e = 0;
    for (const char *p = text; *p && e < size - 8; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            out[e++] = '\\';
            out[e++] = (char)c;
        } else if (c < 0x20) {
            e += (size_t)snprintf(out + e, 7, "\\u%04x", c);
        } else {
            out[e++] = (char)c;
        }
    }
    out[e] = '\0';
}

/* A realistic long conversation so far: a system prompt of about 1,450 tokens (a game's
 * rules and lore, no sentence repeated) and two earlier exchanges, as JSON messages without
 * the closing bracket; `last` is appended as the final user turn. */
static char *long_conversation(const char *assistant_reply, const char *last) {
    static const char *subjects[] = {"The harbour master", "Every lighthouse keeper", "The guild of cartographers",
                                     "A travelling merchant", "The northern garrison", "Each fishing crew",
                                     "The old monastery", "The river ferryman", "A village healer",
                                     "The queen's envoy", "The smugglers of the eastern cove", "The tide reader"};
    static const char *verbs[] = {"records", "must report", "keeps a ledger of", "is forbidden to trade",
                                  "may request", "settles disputes about", "pays a tithe on", "guards"};
    static const char *objects[] = {"salt and dried fish", "lamp oil from the southern wells",
                                    "charts of the shifting sandbanks", "the bells that warn of fog",
                                    "grain stored for the winter", "letters sealed with blue wax",
                                    "the names of every ship that passes", "rope, tar and sailcloth"};
    static const char *conditions[] = {"before the spring storms", "whenever the beacon fails",
                                       "on the first day of each month", "if the tide turns early",
                                       "unless the council decides otherwise", "during the long night festival"};
    size_t size = 64 * 1024, n = 0;
    char *json = malloc(size);
    n += (size_t)snprintf(json + n, size - n,
                          "[{\"role\":\"system\",\"content\":\"You are the narrator of a coastal trading game. "
                          "The rules of the world follow.");
    for (int i = 0; i < 62; i++)
        n += (size_t)snprintf(json + n, size - n, " Rule %d: %s %s %s %s.", i + 1, subjects[i % 12],
                              verbs[(i / 2) % 8], objects[(i * 5 + i / 8) % 8], conditions[(i * 7 + i / 6) % 6]);
    n += (size_t)snprintf(json + n, size - n,
                          "\"},{\"role\":\"user\",\"content\":\"I arrive at the harbour with a cart of salt.\"},"
                          "{\"role\":\"assistant\",\"content\":\"The harbour master records your salt and asks "
                          "for the tithe before the spring storms.\"},{\"role\":\"user\",\"content\":\"I pay the "
                          "tithe and ask about lamp oil.\"}");
    if (assistant_reply) {
        char escaped[4096];
        json_escape(assistant_reply, escaped, sizeof escaped);
        n += (size_t)snprintf(json + n, size - n, ",{\"role\":\"assistant\",\"content\":\"%s\"}", escaped);
    }
    if (last)
        n += (size_t)snprintf(json + n, size - n, ",{\"role\":\"user\",\"content\":\"%s\"}", last);
    snprintf(json + n, size - n, "]");
    return json;
}

#define MAX_REPS 16

static int speed(const char *model, int reps) {
    if (reps > MAX_REPS)
        reps = MAX_REPS;
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = model;
    double started = now_ms();
    rigllama_engine *engine = NULL;
    if (rigllama_engine_create(&options, &engine) != RIGLLAMA_STATUS_OK)
        die("create");
    double load_ms = now_ms() - started;

    char *pp64 = prompt_of(engine, 64), *pp512 = prompt_of(engine, 512);
    double pp64_ts[MAX_REPS], pp512_ts[MAX_REPS], tg_ts[MAX_REPS], tg_wall_ts[MAX_REPS];
    double ttft_ms[MAX_REPS], overhead_us[MAX_REPS], turn1_ttft[MAX_REPS], turn2_ttft[MAX_REPS];
    double cached_ratio[MAX_REPS], tg_tokens[MAX_REPS], tg_sampled_ts[MAX_REPS], tg_sampled_tokens[MAX_REPS];
    double long_turn1_ttft[MAX_REPS], long_turn2_ttft[MAX_REPS], long_turn1_tokens[MAX_REPS],
        long_turn2_cached[MAX_REPS];
    timing t;

    /* Warm-up: the first decode of a process pays one-time allocation costs. */
    rigllama_engine_reset(engine);
    run(engine, "Hello", NULL, 4, &t);

    for (int r = 0; r < reps; r++) {
        rigllama_engine_reset(engine);
        rigllama_usage u = run(engine, pp64, NULL, 1, &t);
        pp64_ts[r] = u.prompt_tokens * 1000.0 / u.prompt_ms;

        rigllama_engine_reset(engine);
        u = run(engine, pp512, NULL, 1, &t);
        pp512_ts[r] = u.prompt_tokens * 1000.0 / u.prompt_ms;

        /* tg128: a short prompt, 128 tokens. The engine's clock runs from the first to the last
         * sampled token (127 decodes); the wall clock from the first to the last callback. */
        rigllama_engine_reset(engine);
        double call_started = now_ms();
        u = run(engine, "Once upon a time, in a faraway kingdom,", NULL, 128, &t);
        double call_ms = now_ms() - call_started;
        tg_tokens[r] = u.completion_tokens;
        tg_ts[r] = (u.completion_tokens - 1) * 1000.0 / u.generation_ms;
        tg_wall_ts[r] = (t.pieces - 1) * 1000.0 / (t.last - t.first);
        ttft_ms[r] = t.first - t.started;
        /* Everything the call cost beyond the engine's own prompt and generation time,
         * spread over the pieces delivered: submission, templating, tokenizing, handing each
         * piece to this thread and calling back. An upper bound on the per-callback cost. */
        overhead_us[r] = (call_ms - u.prompt_ms - u.generation_ms) * 1000.0 / t.pieces;
        /* The same with the default sampling settings (a seed per rep; a reply that ends
         * early is measured over the tokens it has). */
        rigllama_engine_reset(engine);
        sampled_seed = 1000 + (uint32_t)r;
        u = run(engine, "Once upon a time, in a faraway kingdom,", NULL, 128, &t);
        sampled_seed = 0;
        tg_sampled_ts[r] = (u.completion_tokens - 1) * 1000.0 / u.generation_ms;
        tg_sampled_tokens[r] = u.completion_tokens;

        /* Multi-turn: turn 2 repeats turn 1 and its reply, so its prefix comes from cache. */
        rigllama_engine_reset(engine);
        const char *turn1 = "[{\"role\":\"user\",\"content\":\"Tell me about the history of "
                            "lighthouses and the people who kept them, in a few sentences.\"}]";
        rigllama_request request;
        rigllama_request_init(&request, sizeof request);
        request.messages_json = turn1;
        request.temperature = 0.0f;
        request.max_tokens = 48;
        char *reply = NULL;
        rigllama_usage u1;
        double t1 = now_ms();
        /* TTFT of turn 1 measured by streaming it; its text collected with complete after. */
        run(engine, NULL, turn1, 1, &t);
        turn1_ttft[r] = t.first - t1;
        rigllama_engine_reset(engine);
        rigllama_usage_init(&u1, sizeof u1);
        if (rigllama_engine_complete(engine, &request, &reply, &u1) != RIGLLAMA_STATUS_OK)
            die("complete");
        char turn2[8192];
        char escaped[4096];
        json_escape(reply, escaped, sizeof escaped);
        snprintf(turn2, sizeof turn2,
                 "[{\"role\":\"user\",\"content\":\"Tell me about the history of lighthouses and the "
                 "people who kept them, in a few sentences.\"},{\"role\":\"assistant\",\"content\":\"%s\"},"
                 "{\"role\":\"user\",\"content\":\"And who keeps them today?\"}]",
                 escaped);
        rigllama_string_free(reply);
        double t2 = now_ms();
        rigllama_usage u2 = run(engine, NULL, turn2, 1, &t);
        turn2_ttft[r] = t.first - t2;
        cached_ratio[r] = (double)u2.cached_prompt_tokens / (u1.prompt_tokens + u1.completion_tokens);

        /* The realistic multi-turn: a ~1,500-token conversation, then the next user line. */
        rigllama_engine_reset(engine);
        char *long1 = long_conversation(NULL, NULL);
        double l1 = now_ms();
        rigllama_usage lu1 = run(engine, NULL, long1, 1, &t);
        long_turn1_ttft[r] = t.first - l1;
        long_turn1_tokens[r] = lu1.prompt_tokens;
        rigllama_engine_reset(engine);
        rigllama_request_init(&request, sizeof request);
        request.messages_json = long1;
        request.temperature = 0.0f;
        request.max_tokens = 32;
        if (rigllama_engine_complete(engine, &request, &reply, &u1) != RIGLLAMA_STATUS_OK)
            die("complete");
        char *long2 = long_conversation(reply, "Where can I buy it before the storms?");
        rigllama_string_free(reply);
        double l2 = now_ms();
        u2 = run(engine, NULL, long2, 1, &t);
        long_turn2_ttft[r] = t.first - l2;
        long_turn2_cached[r] = (double)u2.cached_prompt_tokens / u2.prompt_tokens;
        free(long1);
        free(long2);
    }

    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    printf("{\n  \"load_ms\": %.1f,\n  \"threads\": \"default\",\n", load_ms);
    print_array("pp64_tok_s", pp64_ts, reps, 0);
    print_array("pp512_tok_s", pp512_ts, reps, 0);
    print_array("tg128_tok_s", tg_ts, reps, 0);
    print_array("tg128_wall_tok_s", tg_wall_ts, reps, 0);
    print_array("tg128_tokens", tg_tokens, reps, 0);
    print_array("tg128_sampled_tok_s", tg_sampled_ts, reps, 0);
    print_array("tg128_sampled_tokens", tg_sampled_tokens, reps, 0);
    print_array("ttft_ms", ttft_ms, reps, 0);
    print_array("callback_overhead_us", overhead_us, reps, 0);
    print_array("turn1_ttft_ms", turn1_ttft, reps, 0);
    print_array("turn2_ttft_ms", turn2_ttft, reps, 0);
    print_array("turn2_cached_ratio", cached_ratio, reps, 0);
    print_array("long_turn1_prompt_tokens", long_turn1_tokens, reps, 0);
    print_array("long_turn1_ttft_ms", long_turn1_ttft, reps, 0);
    print_array("long_turn2_ttft_ms", long_turn2_ttft, reps, 0);
    print_array("long_turn2_cached_share", long_turn2_cached, reps, 0);
    printf("  \"peak_rss_mb\": %.1f\n}\n", usage.ru_maxrss / 1024.0);
    free(pp64);
    free(pp512);
    rigllama_engine_destroy(engine);
    return 0;
}

/* Peak RSS at a given n_ctx: load, evaluate a prompt filling n_ctx - 128, generate 128. */
static int rss(const char *model, uint32_t n_ctx) {
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = model;
    options.n_ctx = n_ctx;
    options.n_batch = n_ctx < 512 ? n_ctx : 512;
    rigllama_engine *engine = NULL;
    if (rigllama_engine_create(&options, &engine) != RIGLLAMA_STATUS_OK)
        die("create");
    char *prompt = prompt_of(engine, (int)n_ctx - 128);
    timing t;
    rigllama_usage u = run(engine, prompt, NULL, 128, &t);
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    printf("{\"n_ctx\": %u, \"prompt_tokens\": %u, \"completion_tokens\": %u, \"peak_rss_mb\": %.1f}\n",
           n_ctx, u.prompt_tokens, u.completion_tokens, usage.ru_maxrss / 1024.0);
    free(prompt);
    rigllama_engine_destroy(engine);
    return 0;
}

/* One chat request streamed through the C ABI: the same request bench/run.py sends through
 * Rig's model.stream (examples/rig_stream.rs), so the two paths compare like for like. */
static int chat(const char *model, const char *prompt, uint32_t max_tokens) {
    rigllama_engine *engine = create_default(model);
    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    request.prompt = prompt;
    request.temperature = 0.0f;
    request.max_tokens = max_tokens;
    rigllama_usage usage;
    rigllama_usage_init(&usage, sizeof usage);
    timing t;
    memset(&t, 0, sizeof t);
    t.started = now_ms();
    if (rigllama_engine_stream(engine, &request, on_piece, &t, &usage) != RIGLLAMA_STATUS_OK)
        die("stream");
    printf("{\"tokens\": %u, \"tg_wall_tok_s\": %.3f}\n", usage.completion_tokens,
           (usage.completion_tokens - 1) * 1000.0 / (t.last - t.first));
    rigllama_engine_destroy(engine);
    return 0;
}

/* ---- structured: what a grammar costs per token ---------------------------------------- */

/* Eight game characters as JSON: a long reply whose every token the grammar checks. */
static const char *PARTY_SCHEMA =
    "{\"type\":\"array\",\"minItems\":8,\"maxItems\":8,\"items\":{\"type\":\"object\","
    "\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":12},"
    "\"class\":{\"enum\":[\"warrior\",\"mage\",\"rogue\",\"cleric\"]},"
    "\"hp\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100}},"
    "\"required\":[\"name\",\"class\",\"hp\"],\"additionalProperties\":false}}";
static const char *LIST_GRAMMAR = "root ::= (\"- \" [A-Za-z ,]{1,40} \"\\n\"){8}";

/* ms per generated token (engine time) of one request, after a reset so every run is cold. */
static double ms_per_token(rigllama_engine *engine, const char *json_schema, const char *grammar,
                           float temperature, uint32_t *tokens) {
    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    request.prompt = "Describe the eight members of an adventuring party.";
    request.json_schema = json_schema;
    request.grammar = grammar;
    request.temperature = temperature;
    request.seed = 5;
    request.max_tokens = 160;
    rigllama_usage usage;
    rigllama_usage_init(&usage, sizeof usage);
    char *text = NULL;
    if (rigllama_engine_reset(engine) != RIGLLAMA_STATUS_OK ||
        rigllama_engine_complete(engine, &request, &text, &usage) != RIGLLAMA_STATUS_OK)
        die("structured request");
    rigllama_string_free(text);
    *tokens = usage.completion_tokens;
    return usage.completion_tokens > 1 ? usage.generation_ms / (usage.completion_tokens - 1) : 0.0;
}

static int structured(const char *model, int reps) {
    rigllama_engine *engine = create_default(model);
    static const char *const names[] = {"free", "json_schema", "gbnf"};
    printf("{");
    for (int sampled = 0; sampled <= 1; sampled++) {
        for (int kind = 0; kind < 3; kind++) {
            printf("%s\"%s_%s_ms_per_token\": [", sampled || kind ? ", " : "", names[kind],
                   sampled ? "sampled" : "greedy");
            uint32_t tokens = 0;
            for (int r = 0; r < reps; r++) {
                double ms = ms_per_token(engine, kind == 1 ? PARTY_SCHEMA : NULL,
                                         kind == 2 ? LIST_GRAMMAR : NULL, sampled ? 0.8f : 0.0f, &tokens);
                printf("%s%.3f", r ? ", " : "", ms);
            }
            printf("], \"%s_%s_tokens\": %u", names[kind], sampled ? "sampled" : "greedy", tokens);
        }
    }
    printf("}\n");
    rigllama_engine_destroy(engine);
    return 0;
}

/* ---- batched: many streams at once ------------------------------------------------------ */

static const char *const story_words[] = {
    " The", " old", " sailor", " looked", " at", " the", " grey", " sea", " and", " began", " his",
    " long", " tale", " of", " storms", ",", " islands", " and", " lost", " ships", ".", " He",
    " spoke", " of", " a", " captain", " who", " sailed", " north", " every", " winter", " to",
    " find", " the", " lighthouse", " that", " no", " map", " showed", ",", " and", " of", " the",
    " crew", " who", " followed", " him", " through", " fog", " and", " ice", " without", " a",
    " word", ".",
};
#define N_STORY_WORDS (sizeof story_words / sizeof story_words[0])

/* A raw prompt of exactly `tokens` tokens (BOS included) that opens with stream `index`'s own
 * chapter number, so no two streams share more than BOS and every sequence evaluates its whole
 * prompt (batched-bench gives each sequence its own random tokens). Ordinary prose keeps the
 * model from ending its reply early. */
static char *story_prompt(rigllama_engine *engine, int index, int tokens) {
    size_t cap = 64 + (size_t)tokens * 24;
    char *text = malloc(cap);
    snprintf(text, cap, "Chapter %d.", index + 1);
    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    request.prompt = text;
    request.raw_prompt = 1;
    uint32_t counted = 0;
    for (size_t w = 0;; w++) {
        if (rigllama_engine_count_tokens(engine, &request, &counted) != RIGLLAMA_STATUS_OK)
            die("count_tokens");
        if ((int)counted >= tokens)
            break;
        size_t len = strlen(text);
        strcat(text, story_words[w % N_STORY_WORDS]);
        if (rigllama_engine_count_tokens(engine, &request, &counted) != RIGLLAMA_STATUS_OK)
            die("count_tokens");
        if ((int)counted > tokens) /* a word of two tokens at the very end: use a one-token one */
            strcpy(text + len, " a");
    }
    if ((int)counted != tokens)
        fprintf(stderr, "rigllama_bench: stream %d prompt is %u tokens, wanted %d\n", index, counted, tokens);
    return text;
}

typedef struct {
    rigllama_job *job;
    double first_ms, end_ms;
    int pieces, ended;
    rigllama_usage usage;
} stream_job;

/* Takes one event of a job; returns 1 if there was one. */
static int take(stream_job *s, const rigllama_event *event) {
    if (event->kind == RIGLLAMA_EVENT_KIND_NONE)
        return 0;
    if (event->kind == RIGLLAMA_EVENT_KIND_TEXT) {
        if (s->pieces++ == 0)
            s->first_ms = now_ms();
        return 1;
    }
    s->end_ms = now_ms();
    s->ended = 1;
    if (event->kind != RIGLLAMA_EVENT_KIND_DONE) {
        fprintf(stderr, "rigllama_bench: a stream failed: %s\n", event->message);
        exit(1);
    }
    rigllama_usage_init(&s->usage, sizeof s->usage);
    if (rigllama_job_usage(s->job, &s->usage) != RIGLLAMA_STATUS_OK)
        die("job_usage");
    return 1;
}

/* Submits one job per prompt while the engine is paused, so all start in the same step, then
 * polls them round-robin from this thread until all have ended. Returns the resume time. */
static double run_streams(rigllama_engine *engine, char **prompts, int n, uint32_t max_tokens, stream_job *jobs) {
    if (rigllama_engine_pause(engine) != RIGLLAMA_STATUS_OK)
        die("pause");
    for (int i = 0; i < n; i++) {
        rigllama_request request;
        rigllama_request_init(&request, sizeof request);
        request.prompt = prompts[i];
        request.raw_prompt = 1;
        request.temperature = 0.0f;
        request.max_tokens = max_tokens;
        memset(&jobs[i], 0, sizeof jobs[i]);
        if (rigllama_engine_submit(engine, &request, &jobs[i].job) != RIGLLAMA_STATUS_OK)
            die("submit");
    }
    double resumed = now_ms();
    if (rigllama_engine_resume(engine) != RIGLLAMA_STATUS_OK)
        die("resume");
    rigllama_event event;
    rigllama_event_init(&event, sizeof event);
    for (int open = n; open > 0;) {
        int taken = 0;
        open = 0;
        for (int i = 0; i < n; i++) {
            while (!jobs[i].ended) {
                if (rigllama_job_poll(jobs[i].job, 0, &event) != RIGLLAMA_STATUS_OK)
                    die("poll");
                if (!take(&jobs[i], &event))
                    break;
                taken++;
            }
            open += !jobs[i].ended;
        }
        if (open > 0 && taken == 0) {
            /* Nothing new: sleep until an unfinished job's next event. Every running stream gets
             * its token in the same step, so one wake-up a step serves them all; waking more often
             * would take CPU from llama.cpp's threads on a machine whose cores are all theirs. */
            for (int i = 0; i < n; i++) {
                if (jobs[i].ended)
                    continue;
                if (rigllama_job_poll(jobs[i].job, 1000, &event) != RIGLLAMA_STATUS_OK)
                    die("poll");
                take(&jobs[i], &event);
                break;
            }
        }
    }
    for (int i = 0; i < n; i++)
        rigllama_job_free(jobs[i].job);
    return resumed;
}

#define MAX_STREAMS 64

static int batched(const char *model, const char *npl_list, int npp, int ntg, uint32_t n_ctx) {
    printf("{\n  \"threads\": 2, \"n_ctx\": %u, \"npp\": %d, \"ntg\": %d,\n  \"runs\": [", n_ctx, npp, ntg);
    char list[256];
    snprintf(list, sizeof list, "%s", npl_list);
    int first_run = 1;
    for (char *item = strtok(list, ","); item; item = strtok(NULL, ",")) {
        int n = atoi(item);
        if (n < 1 || n > MAX_STREAMS) {
            fprintf(stderr, "rigllama_bench: %d streams is out of range\n", n);
            return 2;
        }
        rigllama_engine_options options;
        rigllama_engine_options_init(&options, sizeof options);
        options.model_path = model;
        options.n_seq = (uint32_t)n;
        options.n_threads = 2;
        options.n_ctx = n_ctx;
        rigllama_engine *engine = NULL;
        if (rigllama_engine_create(&options, &engine) != RIGLLAMA_STATUS_OK)
            die("create");
        char *prompts[MAX_STREAMS];
        stream_job jobs[MAX_STREAMS];
        for (int i = 0; i < n; i++)
            prompts[i] = story_prompt(engine, i, npp);
        /* Warm-up with as many streams (the first decodes of a context pay one-time costs), then
         * an empty cache so every measured prompt is evaluated in full. */
        run_streams(engine, prompts, n, 4, jobs);
        if (rigllama_engine_reset(engine) != RIGLLAMA_STATUS_OK)
            die("reset");

        double resumed = run_streams(engine, prompts, n, (uint32_t)ntg, jobs);
        double first_min = 1e300, first_max = 0, end_max = 0, prompt_ms_max = 0, gen_ms_max = 0;
        long generated = 0, after_first = 0, prompt_tokens = 0, cached = 0;
        for (int i = 0; i < n; i++) {
            stream_job *j = &jobs[i];
            first_min = j->first_ms < first_min ? j->first_ms : first_min;
            first_max = j->first_ms > first_max ? j->first_ms : first_max;
            end_max = j->end_ms > end_max ? j->end_ms : end_max;
            generated += j->usage.completion_tokens;
            after_first += j->usage.completion_tokens - 1;
            prompt_tokens += j->usage.prompt_tokens;
            cached += j->usage.cached_prompt_tokens;
            prompt_ms_max = j->usage.prompt_ms > prompt_ms_max ? j->usage.prompt_ms : prompt_ms_max;
            gen_ms_max = j->usage.generation_ms > gen_ms_max ? j->usage.generation_ms : gen_ms_max;
        }
        /* S_TG as batched-bench defines it (all tokens generated / time generating), from the
         * first token of the first stream to the end of the last: the tokens after each
         * stream's first (those come from the prompt's decode) over that window. */
        double t_tg_ms = end_max - first_min;
        printf("%s\n    {\"streams\": %d, \"s_tg_tok_s\": %.3f, \"t_tg_s\": %.4f, \"generated\": %ld, "
               "\"after_first\": %ld, \"prompt_tokens\": %ld, \"cached_prompt_tokens\": %ld, "
               "\"s_pp_tok_s\": %.3f, \"first_token_spread_ms\": %.2f, \"engine_s_tg_tok_s\": %.3f}",
               first_run ? "" : ",", n, after_first * 1000.0 / t_tg_ms, t_tg_ms / 1e3, generated, after_first,
               prompt_tokens, cached, prompt_tokens * 1000.0 / (first_max - resumed), first_max - first_min,
               after_first * 1000.0 / gen_ms_max);
        fflush(stdout);
        first_run = 0;
        for (int i = 0; i < n; i++)
            free(prompts[i]);
        rigllama_engine_destroy(engine);
    }
    printf("\n  ]\n}\n");
    return 0;
}

/* A number that follows `"key":` in a JSON text (describe's), or -1. */
static double json_number(const char *json, const char *key) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *at = strstr(json, pattern);
    return at ? atof(at + strlen(pattern)) : -1.0;
}

/* The configurations of the KV table: cache type (K and V alike) and flash attention. */
static const struct {
    const char *name;
    int32_t type;
    int32_t flash;
} KV_CONFIGS[] = {
    {"f16", RIGLLAMA_KV_TYPE_F16, RIGLLAMA_FLASH_ATTENTION_OFF},
    {"f16", RIGLLAMA_KV_TYPE_F16, RIGLLAMA_FLASH_ATTENTION_ON},
    {"q8_0", RIGLLAMA_KV_TYPE_Q8_0, RIGLLAMA_FLASH_ATTENTION_ON},
    {"q4_0", RIGLLAMA_KV_TYPE_Q4_0, RIGLLAMA_FLASH_ATTENTION_ON},
};

static int kv(const char *model, int reps) {
    if (reps > MAX_REPS)
        reps = MAX_REPS;
    printf("{\n  \"n_ctx\": 4096,\n  \"runs\": [");
    for (size_t c = 0; c < sizeof KV_CONFIGS / sizeof KV_CONFIGS[0]; c++) {
        rigllama_engine_options options;
        rigllama_engine_options_init(&options, sizeof options);
        options.model_path = model;
        options.n_ctx = 4096;
        options.type_k = options.type_v = KV_CONFIGS[c].type;
        options.flash_attention = KV_CONFIGS[c].flash;
        rigllama_engine *engine = NULL;
        if (rigllama_engine_create(&options, &engine) != RIGLLAMA_STATUS_OK)
            die("create");
        char *json = NULL;
        if (rigllama_engine_describe(engine, &json) != RIGLLAMA_STATUS_OK)
            die("describe");
        double kv_bytes = json_number(json, "kv_cache_bytes");
        rigllama_string_free(json);
        char *pp512 = prompt_of(engine, 512);
        double pp_ts[MAX_REPS], tg_ts[MAX_REPS];
        timing t;
        rigllama_engine_reset(engine);
        run(engine, "Hello", NULL, 4, &t); /* warm-up */
        for (int r = 0; r < reps; r++) {
            rigllama_engine_reset(engine);
            rigllama_usage u = run(engine, pp512, NULL, 1, &t);
            pp_ts[r] = u.prompt_tokens * 1000.0 / u.prompt_ms;
            rigllama_engine_reset(engine);
            u = run(engine, "Once upon a time, in a faraway kingdom,", NULL, 128, &t);
            tg_ts[r] = (u.completion_tokens - 1) * 1000.0 / u.generation_ms;
        }
        printf("%s\n  {\"type\": \"%s\", \"flash_attention\": %s, \"kv_cache_bytes\": %.0f,\n", c ? "," : "",
               KV_CONFIGS[c].name, KV_CONFIGS[c].flash == RIGLLAMA_FLASH_ATTENTION_ON ? "true" : "false", kv_bytes);
        print_array("pp512", pp_ts, reps, 0);
        print_array("tg128", tg_ts, reps, 1);
        printf("  }");
        free(pp512);
        rigllama_engine_destroy(engine);
    }
    printf("\n  ]\n}\n");
    return 0;
}

/* Prompt-lookup speculation on one workload: the raw prompt in PROMPT_FILE (already in the
 * chat template's format, as llama.cpp's lookup example takes it), at TEMPERATURE (seed 1234;
 * the other settings default), N tokens, plain
 * (draft_max 0) and guessed (draft_max DRAFT) alternately, each from an empty cache. Prints
 * JSON with the generation speeds (the tg128 measure: tokens after the first over the engine's
 * clock), the counters, and writes both replies to OUT_DIR/plain.txt and OUT_DIR/guessed.txt. */
static int lookup(const char *model, const char *prompt_file, uint32_t n, uint32_t draft, int reps,
                  const char *out_dir, float temperature) {
    if (reps > MAX_REPS)
        reps = MAX_REPS;
    FILE *f = fopen(prompt_file, "rb");
    if (!f)
        die("open the prompt file");
    static char prompt[65536];
    size_t len = fread(prompt, 1, sizeof prompt - 1, f);
    fclose(f);
    prompt[len] = 0;
    rigllama_engine *engine = create_default(model);
    timing t;
    rigllama_engine_reset(engine);
    run(engine, "Hello", NULL, 4, &t); /* warm-up */
    double ts[2][MAX_REPS];
    rigllama_usage last[2];
    for (int r = 0; r < reps; r++) {
        for (int guessed = 0; guessed < 2; guessed++) {
            rigllama_request request;
            rigllama_request_init(&request, sizeof request);
            request.prompt = prompt;
            request.raw_prompt = 1;
            request.temperature = temperature;
            request.seed = 1234;
            request.max_tokens = n;
            request.draft_max = guessed ? draft : 0;
            rigllama_usage u;
            rigllama_usage_init(&u, sizeof u);
            char *text = NULL;
            rigllama_engine_reset(engine);
            if (rigllama_engine_complete(engine, &request, &text, &u) != RIGLLAMA_STATUS_OK)
                die("complete");
            ts[guessed][r] = (u.completion_tokens - 1) * 1000.0 / u.generation_ms;
            last[guessed] = u;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s.txt", out_dir, guessed ? "guessed" : "plain");
            FILE *out = fopen(path, "wb");
            if (!out)
                die("write the reply");
            fputs(text, out);
            fclose(out);
            rigllama_string_free(text);
        }
    }
    printf("{\n");
    print_array("plain", ts[0], reps, 0);
    print_array("guessed", ts[1], reps, 0);
    printf("  \"tokens\": [%u, %u], \"drafted\": %u, \"accepted\": %u\n}\n", last[0].completion_tokens,
           last[1].completion_tokens, last[1].drafted_tokens, last[1].accepted_tokens);
    rigllama_engine_destroy(engine);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL speed REPS | MODEL rss N_CTX | MODEL chat PROMPT N | "
                        "MODEL structured REPS | MODEL kv REPS | MODEL batched NPL NPP NTG N_CTX | "
                        "MODEL lookup PROMPT_FILE N DRAFT REPS OUT_DIR TEMPERATURE\n", argv[0]);
        return 2;
    }
    if (strcmp(argv[2], "speed") == 0)
        return speed(argv[1], atoi(argv[3]));
    if (strcmp(argv[2], "chat") == 0 && argc > 4)
        return chat(argv[1], argv[3], (uint32_t)atoi(argv[4]));
    if (strcmp(argv[2], "rss") == 0)
        return rss(argv[1], (uint32_t)atoi(argv[3]));
    if (strcmp(argv[2], "structured") == 0 && argc > 3)
        return structured(argv[1], atoi(argv[3]));
    if (strcmp(argv[2], "kv") == 0 && argc > 3)
        return kv(argv[1], atoi(argv[3]));
    if (strcmp(argv[2], "lookup") == 0 && argc > 8)
        return lookup(argv[1], argv[3], (uint32_t)atoi(argv[4]), (uint32_t)atoi(argv[5]), atoi(argv[6]), argv[7],
                      (float)atof(argv[8]));
    if (strcmp(argv[2], "batched") == 0 && argc > 6)
        return batched(argv[1], argv[3], atoi(argv[4]), atoi(argv[5]), (uint32_t)atoi(argv[6]));
    fprintf(stderr, "unknown mode %s\n", argv[2]);
    return 2;
}
