/* The sampler knobs, log-probabilities, KV cache types, flash attention, fitting and LoRA
 * adapters through the C ABI (issue 13): every new field's default, every out-of-range value
 * refused with INVALID_ARGUMENT naming the field and the value, a knob that has its effect,
 * LOGPROBS job events and chat's "logprobs", a Q8_0 cache, a refused flash-attention
 * combination, a fit that cannot fit, and adapters added, rescaled, removed and refused
 * (tests/knobs.rs and tests/lora.rs show each effect in depth).
 *
 *   usage: test_knobs MODEL.gguf [SECOND.gguf]   (RIGLLAMA_LORA_DIR: scripts/make-lora-adapter's
 *          output directory; the adapter checks are skipped, and counted as failures, without it) */
#include <math.h> /* NAN, INFINITY */
#include <string.h>

#include "check.h"

static rigllama_engine *create(rigllama_engine_options *options) {
    rigllama_engine *engine = NULL;
    rigllama_status status = rigllama_engine_create(options, &engine);
    CHECK(status == RIGLLAMA_STATUS_OK && engine, "create: status %d", status);
    return engine;
}

static void refused(rigllama_engine *engine, const rigllama_request *request, const char *field_and_value) {
    char *text = NULL;
    rigllama_status status = rigllama_engine_complete(engine, request, &text, NULL);
    CHECK(status == RIGLLAMA_STATUS_INVALID_ARGUMENT, "%s: status %d", field_and_value, status);
    CHECK(text == NULL, "%s: out_text set on failure", field_and_value);
    CHECK(strstr(rigllama_last_error(), field_and_value) != NULL, "message \"%s\" lacks \"%s\"",
          rigllama_last_error(), field_and_value);
}

static char *complete(rigllama_engine *engine, const rigllama_request *request) {
    char *text = NULL;
    rigllama_status status = rigllama_engine_complete(engine, request, &text, NULL);
    CHECK(status == RIGLLAMA_STATUS_OK && text, "complete: status %d", status);
    return text;
}

static int count(const char *haystack, const char *needle) {
    int n = 0;
    for (const char *at = strstr(haystack, needle); at; at = strstr(at + 1, needle)) {
        n++;
    }
    return n;
}

static int near(float a, float b) {
    return a - b < 1e-6f && b - a < 1e-6f;
}

static void test_defaults(void) {
    rigllama_request r;
    rigllama_request_init(&r, sizeof r);
    CHECK(r.presence_penalty == 0.0f && r.frequency_penalty == 0.0f && r.penalty_last_n == 64, "penalty defaults");
    CHECK(r.dry_multiplier == 0.0f && near(r.dry_base, 1.75f) && r.dry_allowed_length == 2 &&
              r.dry_penalty_last_n == -1 && r.dry_sequence_breakers == NULL && r.n_dry_sequence_breakers == 0,
          "DRY defaults");
    CHECK(r.xtc_probability == 0.0f && near(r.xtc_threshold, 0.1f), "XTC defaults");
    CHECK(r.typical_p == 1.0f && r.top_n_sigma == 0.0f, "typical-p and top-n-sigma defaults");
    CHECK(r.mirostat == RIGLLAMA_MIROSTAT_OFF && r.mirostat_tau == 5.0f && near(r.mirostat_eta, 0.1f),
          "mirostat defaults");
    CHECK(r.n_logprobs == 0 && r.logit_bias_json == NULL, "logprobs and logit bias defaults");
    CHECK(r.adaptive_target < 0.0f && near(r.adaptive_decay, 0.9f), "adaptive-p defaults (off)");
    CHECK(r.reasoning_budget == -1, "reasoning budget default (unlimited)");
    rigllama_engine_options o;
    rigllama_engine_options_init(&o, sizeof o);
    CHECK(o.type_k == RIGLLAMA_KV_TYPE_F16 && o.type_v == RIGLLAMA_KV_TYPE_F16 &&
              o.flash_attention == RIGLLAMA_FLASH_ATTENTION_AUTO,
          "KV and flash attention defaults");
    CHECK(o.fit == 0 && o.fit_min_ctx == 4096 && o.fit_margins_mib == NULL && o.n_fit_margins_mib == 0,
          "fit defaults");
}

static void test_ranges(rigllama_engine *engine) {
    rigllama_request r;
#define BAD(set, expected)                                                                    \
    do {                                                                                      \
        r = greedy("x", 2);                                                                   \
        set;                                                                                  \
        refused(engine, &r, expected);                                                        \
    } while (0)
    BAD(r.presence_penalty = 2.5f, "presence_penalty 2.5");
    BAD(r.frequency_penalty = -3.0f, "frequency_penalty -3");
    BAD(r.frequency_penalty = NAN, "frequency_penalty NaN");
    BAD(r.penalty_last_n = -2, "penalty_last_n -2");
    BAD(r.dry_multiplier = -1.0f, "dry_multiplier -1");
    BAD(r.dry_base = 0.5f, "dry_base 0.5");
    BAD(r.dry_allowed_length = -1, "dry_allowed_length -1");
    BAD(r.dry_penalty_last_n = -7, "dry_penalty_last_n -7");
    static const char *const empty_breaker[] = {"\n", ""};
    BAD((r.dry_sequence_breakers = empty_breaker, r.n_dry_sequence_breakers = 2), "sequence breaker 1");
    static const char *const null_breaker[] = {NULL};
    BAD((r.dry_sequence_breakers = null_breaker, r.n_dry_sequence_breakers = 1), "dry_sequence_breakers[0] is NULL");
    BAD(r.xtc_probability = 1.5f, "xtc_probability 1.5");
    BAD(r.xtc_threshold = -0.5f, "xtc_threshold -0.5");
    BAD(r.typical_p = 0.0f, "typical_p 0");
    BAD(r.top_n_sigma = -1.0f, "top_n_sigma -1");
    BAD(r.mirostat = 3, "mirostat 3");
    BAD((r.mirostat = RIGLLAMA_MIROSTAT_V2, r.mirostat_tau = 0.0f), "mirostat_tau 0");
    BAD((r.mirostat = RIGLLAMA_MIROSTAT_V1, r.mirostat_eta = 2.0f), "mirostat_eta 2");
    BAD(r.adaptive_target = 1.5f, "adaptive_target 1.5");
    BAD((r.adaptive_target = 0.3f, r.adaptive_decay = 1.0f), "adaptive_decay 1");
    BAD((r.adaptive_target = 0.3f, r.mirostat = RIGLLAMA_MIROSTAT_V2), "adaptive_target and mirostat");
    BAD(r.reasoning_budget = -2, "reasoning_budget -2");
    BAD(r.n_logprobs = 21, "n_logprobs 21");
    BAD(r.logit_bias_json = "{\"abc\": 1}", "key \"abc\" is not a token id");
    BAD(r.logit_bias_json = "[[1, true]]", "must be a number or false");
    BAD(r.logit_bias_json = "{\"999999999\": 1}", "token 999999999 is outside");
    BAD(r.logit_bias_json = "[1,", "logit_bias is not valid JSON");
#undef BAD
    /* The engine answers after all of that. */
    rigllama_request ok = greedy("The capital of France is", 4);
    char *text = complete(engine, &ok);
    rigllama_string_free(text);
}

/* A logit bias that bans the greedy first token: it never appears. Logit bias in both JSON
 * shapes, and a strong presence penalty that changes greedy text. */
static void test_knob_effects(rigllama_engine *engine) {
    rigllama_request r = greedy("The capital of France is", 16);
    char *base = complete(engine, &r);
    r.logit_bias_json = "[[\" the\", false], [\"the\", false]]";
    char *banned = complete(engine, &r);
    CHECK(base && strstr(base, " the") != NULL, "the greedy reply uses \" the\": \"%s\"", base ? base : "");
    CHECK(banned && strstr(banned, " the") == NULL && strcmp(banned, base) != 0, "\" the\" banned: \"%s\"",
          banned ? banned : "");
    rigllama_string_free(banned);
    r = greedy("The capital of France is", 16);
    r.presence_penalty = 2.0f;
    r.penalty_last_n = -1;
    char *penalised = complete(engine, &r);
    CHECK(penalised && strcmp(penalised, base) != 0, "presence penalty changes \"%s\"", penalised ? penalised : "");
    rigllama_string_free(penalised);
    rigllama_string_free(base);
    /* A seeded DRY request is deterministic. */
    r = greedy("the cat sat on the mat. the cat sat on the mat. the cat", 24);
    r.temperature = 1.0f;
    r.seed = 99;
    r.dry_multiplier = 2.0f;
    static const char *const breakers[] = {"\n"};
    r.dry_sequence_breakers = breakers;
    r.n_dry_sequence_breakers = 1;
    rigllama_engine_reset(engine);
    char *first = complete(engine, &r);
    rigllama_engine_reset(engine);
    char *again = complete(engine, &r);
    CHECK(first && again && strcmp(first, again) == 0, "seeded DRY deterministic");
    rigllama_string_free(first);
    rigllama_string_free(again);
    /* Adaptive-p changes a seeded reply, and repeats it with the same seed. */
    r = greedy("Once upon a time", 32);
    r.temperature = 1.0f;
    r.top_k = 0;
    r.top_p = 1.0f;
    r.min_p = 0.0f;
    r.seed = 1234;
    rigllama_engine_reset(engine);
    char *plain = complete(engine, &r);
    r.adaptive_target = 0.3f;
    rigllama_engine_reset(engine);
    first = complete(engine, &r);
    rigllama_engine_reset(engine);
    again = complete(engine, &r);
    CHECK(first && again && plain && strcmp(first, again) == 0 && strcmp(first, plain) != 0,
          "adaptive-p: \"%s\" twice, not \"%s\"", first ? first : "", plain ? plain : "");
    rigllama_string_free(plain);
    rigllama_string_free(first);
    rigllama_string_free(again);
}

static void test_logprobs(rigllama_engine *engine) {
    rigllama_request r = greedy("The capital of France is", 8);
    r.n_logprobs = 3;
    rigllama_job *job = NULL;
    CHECK(rigllama_engine_submit(engine, &r, &job) == RIGLLAMA_STATUS_OK, "submit");
    rigllama_event event;
    rigllama_event_init(&event, sizeof event);
    int logprob_events = 0, entries = 0, text_events = 0, texts_before_logprobs = 0;
    for (;;) {
        CHECK(rigllama_job_poll(job, 1000, &event) == RIGLLAMA_STATUS_OK, "poll");
        if (event.kind == RIGLLAMA_EVENT_KIND_LOGPROBS) {
            logprob_events++;
            entries += count(event.text, "\"top_logprobs\"");
            CHECK(event.text[0] == '[' && strstr(event.text, "\"logprob\":-") != NULL, "LOGPROBS JSON %s", event.text);
            CHECK(count(event.text, "\"top_logprobs\"") * 4 == count(event.text, "\"logprob\""),
                  "3 alternatives per token at temperature 0: %s", event.text);
        } else if (event.kind == RIGLLAMA_EVENT_KIND_TEXT) {
            if (logprob_events == 0) {
                texts_before_logprobs++;
            }
            text_events++;
        } else if (event.kind != RIGLLAMA_EVENT_KIND_NONE) {
            break;
        }
    }
    CHECK(event.kind == RIGLLAMA_EVENT_KIND_DONE, "done: kind %d", event.kind);
    rigllama_usage usage;
    rigllama_usage_init(&usage, sizeof usage);
    rigllama_job_usage(job, &usage);
    CHECK(logprob_events > 0 && texts_before_logprobs == 0, "LOGPROBS come before their text");
    CHECK((uint32_t)entries == usage.completion_tokens, "%d entries for %u tokens", entries, usage.completion_tokens);
    rigllama_job_free(job);
    /* Without n_logprobs, no LOGPROBS event (what a v0.1 program sees). */
    r.n_logprobs = 0;
    CHECK(rigllama_engine_submit(engine, &r, &job) == RIGLLAMA_STATUS_OK, "submit");
    int unexpected = 0;
    do {
        rigllama_job_poll(job, 1000, &event);
        unexpected += event.kind == RIGLLAMA_EVENT_KIND_LOGPROBS;
    } while (event.kind == RIGLLAMA_EVENT_KIND_NONE || event.kind == RIGLLAMA_EVENT_KIND_TEXT ||
             event.kind == RIGLLAMA_EVENT_KIND_LOGPROBS);
    CHECK(unexpected == 0, "no LOGPROBS unless asked");
    rigllama_job_free(job);
    /* chat's JSON carries OpenAI's logprobs.content. */
    rigllama_request chat;
    rigllama_request_init(&chat, sizeof chat);
    chat.prompt = "Say hello.";
    chat.temperature = 0.0f;
    chat.max_tokens = 6;
    chat.n_logprobs = 2;
    char *message = NULL;
    CHECK(rigllama_engine_chat(engine, &chat, &message, &usage) == RIGLLAMA_STATUS_OK, "chat");
    CHECK(message && strstr(message, "\"logprobs\":{\"content\":[{") != NULL, "chat logprobs: %s",
          message ? message : "");
    CHECK(message && (uint32_t)count(message, "\"top_logprobs\"") == usage.completion_tokens, "one per token");
    rigllama_string_free(message);
}

static void test_kv_types_flash_attention_and_fit(const char *model) {
    rigllama_engine_options o;
    rigllama_engine_options_init(&o, sizeof o);
    o.model_path = model;
    o.type_k = RIGLLAMA_KV_TYPE_Q8_0;
    o.type_v = RIGLLAMA_KV_TYPE_Q8_0;
    rigllama_engine *engine = create(&o);
    if (engine) {
        char *json = NULL;
        rigllama_engine_describe(engine, &json);
        CHECK(json && strstr(json, "\"type_k\":\"q8_0\"") && strstr(json, "\"type_v\":\"q8_0\"") &&
                  strstr(json, "\"kv_cache_bytes\":"),
              "describe: %s", json ? json : "");
        rigllama_string_free(json);
        rigllama_request r = greedy("The capital of France is", 6);
        char *text = complete(engine, &r);
        CHECK(text && strlen(text) > 0, "Q8_0 cache generates");
        rigllama_string_free(text);
        rigllama_engine_destroy(engine);
    }
    rigllama_engine *none = NULL;
    o.flash_attention = RIGLLAMA_FLASH_ATTENTION_OFF;
    CHECK(rigllama_engine_create(&o, &none) == RIGLLAMA_STATUS_INVALID_ARGUMENT && none == NULL, "quantized V without FA");
    CHECK(strstr(rigllama_last_error(), "flash attention") != NULL, "says why: %s", rigllama_last_error());
    o.flash_attention = 5;
    CHECK(rigllama_engine_create(&o, &none) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "unknown FA value");
    CHECK(strstr(rigllama_last_error(), "flash_attention 5") != NULL, "%s", rigllama_last_error());
    rigllama_engine_options_init(&o, sizeof o);
    o.model_path = model;
    o.type_k = 9;
    CHECK(rigllama_engine_create(&o, &none) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "unknown KV type");
    CHECK(strstr(rigllama_last_error(), "type_k 9") != NULL, "%s", rigllama_last_error());
    /* Fit: a margin larger than any machine's memory cannot be met even at fit_min_ctx. */
    rigllama_engine_options_init(&o, sizeof o);
    o.model_path = model;
    o.fit = 1;
    const uint32_t huge[] = {0xFFFFFFFFu};
    o.fit_margins_mib = huge;
    o.n_fit_margins_mib = 1;
    CHECK(rigllama_engine_create(&o, &none) == RIGLLAMA_STATUS_MODEL_LOAD_FAILED && none == NULL, "unfittable");
    CHECK(strstr(rigllama_last_error(), "does not fit") != NULL, "%s", rigllama_last_error());
    o.fit_margins_mib = NULL;
    o.n_fit_margins_mib = 0;
    engine = create(&o);
    if (engine) {
        char *json = NULL;
        rigllama_engine_describe(engine, &json);
        CHECK(json && strstr(json, "\"fit\":{\"n_ctx\":4096") && strstr(json, "\"reason\":\"fits"), "fit: %s",
              json ? json : "");
        rigllama_string_free(json);
        rigllama_engine_destroy(engine);
    }
    o.fit = 2;
    CHECK(rigllama_engine_create(&o, &none) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "fit 2");
}

static rigllama_status inside_status = RIGLLAMA_STATUS_OK;
static int32_t lora_change_inside(void *user_data, const char *piece, size_t len) {
    (void)piece;
    (void)len;
    inside_status = rigllama_engine_remove_lora((rigllama_engine *)user_data, 12345);
    return 1;
}

static void test_lora(rigllama_engine *engine, const char *dir) {
    /* A LoRA change waits for running requests: from inside a callback it would deadlock. */
    rigllama_request first = greedy("Once upon a time", 4);
    CHECK(rigllama_engine_stream(engine, &first, lora_change_inside, engine, NULL) == RIGLLAMA_STATUS_OK, "stream");
    CHECK(inside_status == RIGLLAMA_STATUS_BUSY, "a LoRA change inside a callback: status %d", inside_status);
    if (!dir) {
        CHECK(dir != NULL, "RIGLLAMA_LORA_DIR is not set: run scripts/make-lora-adapter MODEL DIR");
        return;
    }
    char lora[1024], wrong[1024];
    snprintf(lora, sizeof lora, "%s/gemma3-270m-lora.gguf", dir);
    snprintf(wrong, sizeof wrong, "%s/lora-wrong-shape.gguf", dir);
    rigllama_request r = greedy("The capital of France is", 16);
    rigllama_engine_reset(engine);
    char *base = complete(engine, &r);
    uint32_t id = 0xFFFF;
    CHECK(rigllama_engine_add_lora(engine, lora, 0.0f, &id) == RIGLLAMA_STATUS_OK, "add_lora");
    char *same = complete(engine, &r);
    CHECK(same && base && strcmp(same, base) == 0, "scale 0 is the base model");
    CHECK(rigllama_engine_set_lora_scale(engine, id, 1.0f) == RIGLLAMA_STATUS_OK, "set scale");
    char *adapted = complete(engine, &r);
    CHECK(adapted && base && strcmp(adapted, base) != 0, "scale 1 changes the text");
    char *json = NULL;
    rigllama_engine_describe(engine, &json);
    CHECK(json && strstr(json, "\"lora\":[{\"id\":") && strstr(json, "\"scale\":1.0"), "describe: %s", json ? json : "");
    rigllama_string_free(json);
    /* Per request: the adapter at scale 1 for this request alone equals scale 1 engine-wide;
       listing no adapter (lora_ids set, n_loras 0) is the base model whatever the engine-wide
       scale. */
    CHECK(rigllama_engine_set_lora_scale(engine, id, 0.0f) == RIGLLAMA_STATUS_OK, "engine-wide scale 0");
    const float one = 1.0f, too_big = 1000.0f;
    const uint32_t unknown = 77;
    rigllama_request own = r;
    own.lora_ids = &id;
    own.lora_scales = &one;
    own.n_loras = 1;
    rigllama_engine_reset(engine);
    char *per_request = complete(engine, &own);
    CHECK(per_request && adapted && strcmp(per_request, adapted) == 0, "per request = engine-wide: %s",
          per_request ? per_request : "");
    CHECK(rigllama_engine_set_lora_scale(engine, id, 1.0f) == RIGLLAMA_STATUS_OK, "engine-wide scale 1");
    rigllama_request none_at_all = r;
    none_at_all.lora_ids = &id;
    none_at_all.n_loras = 0;
    rigllama_engine_reset(engine);
    char *without = complete(engine, &none_at_all);
    CHECK(without && base && strcmp(without, base) == 0, "no adapter for this request: the base model");
    rigllama_request bad = r;
    bad.lora_ids = &unknown;
    bad.lora_scales = &one;
    bad.n_loras = 1;
    refused(engine, &bad, "lora_ids[0] = 77");
    bad.lora_ids = &id;
    bad.lora_scales = &too_big;
    refused(engine, &bad, "lora_scales[0]");
    bad.lora_scales = NULL;
    char *no_text = NULL;
    CHECK(rigllama_engine_complete(engine, &bad, &no_text, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT && !no_text &&
              strstr(rigllama_last_error(), "lora_scales"),
          "NULL lora_scales: %s", rigllama_last_error());
    bad.lora_ids = NULL;
    refused(engine, &bad, "lora_ids is NULL");
    rigllama_string_free(per_request);
    rigllama_string_free(without);
    CHECK(rigllama_engine_remove_lora(engine, id) == RIGLLAMA_STATUS_OK, "remove");
    rigllama_engine_reset(engine);
    char *back = complete(engine, &r);
    CHECK(back && base && strcmp(back, base) == 0, "removed: the base model again");
    CHECK(rigllama_engine_remove_lora(engine, id) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "unknown id");
    CHECK(rigllama_engine_set_lora_scale(engine, 77, 1.0f) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "unknown id");
    uint32_t other = 0;
    CHECK(rigllama_engine_add_lora(engine, wrong, 1.0f, &other) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "wrong shape");
    CHECK(strstr(rigllama_last_error(), "incorrect shape") != NULL, "%s", rigllama_last_error());
    CHECK(rigllama_engine_add_lora(engine, "/nonexistent.gguf", 1.0f, &other) == RIGLLAMA_STATUS_INVALID_ARGUMENT,
          "missing file");
    CHECK(rigllama_engine_add_lora(engine, lora, INFINITY, &other) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "bad scale");
    CHECK(rigllama_engine_add_lora(engine, NULL, 1.0f, &other) == RIGLLAMA_STATUS_NULL_ARGUMENT, "NULL path");
    CHECK(rigllama_engine_add_lora(engine, lora, 1.0f, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "NULL out");
    char *still = complete(engine, &r);
    CHECK(still && base && strcmp(still, base) == 0, "serving, unchanged, after refusals");
    rigllama_string_free(base);
    rigllama_string_free(same);
    rigllama_string_free(adapted);
    rigllama_string_free(back);
    rigllama_string_free(still);
}

/* A control vector: strength 0 is the base model, 1 changes the text, clearing restores it;
   one for another width is refused with the reason. */
static void test_control_vector(rigllama_engine *engine, const char *dir) {
    if (!dir) {
        CHECK(dir != NULL, "RIGLLAMA_CONTROL_VECTOR_DIR is not set: run scripts/make-control-vector MODEL DIR");
        return;
    }
    char vector[1024], wrong[1024];
    snprintf(vector, sizeof vector, "%s/control-vector-random.gguf", dir);
    snprintf(wrong, sizeof wrong, "%s/control-vector-wrong-width.gguf", dir);
    rigllama_request r = greedy("The lighthouse keeper", 16);
    rigllama_engine_reset(engine);
    char *base = complete(engine, &r);
    CHECK(rigllama_engine_set_control_vector(engine, vector, 0.0f, 0, 0) == RIGLLAMA_STATUS_OK, "strength 0: %s",
          rigllama_last_error());
    rigllama_engine_reset(engine);
    char *same = complete(engine, &r);
    CHECK(same && base && strcmp(same, base) == 0, "strength 0 is the base model");
    CHECK(rigllama_engine_set_control_vector(engine, vector, 1.0f, 0, 0) == RIGLLAMA_STATUS_OK, "strength 1");
    rigllama_engine_reset(engine);
    char *steered = complete(engine, &r);
    CHECK(steered && base && strcmp(steered, base) != 0, "strength 1 changes the text: \"%s\"", steered ? steered : "");
    char *json = NULL;
    rigllama_engine_describe(engine, &json);
    CHECK(json && strstr(json, "\"control_vector\":{\"path\":") && strstr(json, "\"layer_start\":1"), "describe: %s",
          json ? json : "");
    rigllama_string_free(json);
    CHECK(rigllama_engine_set_control_vector(engine, wrong, 1.0f, 0, 0) == RIGLLAMA_STATUS_INVALID_ARGUMENT &&
              strstr(rigllama_last_error(), "640 wide"),
          "another width: %s", rigllama_last_error());
    CHECK(rigllama_engine_set_control_vector(engine, vector, 1.0f, 3, 99) == RIGLLAMA_STATUS_INVALID_ARGUMENT &&
              strstr(rigllama_last_error(), "layer range 3..99"),
          "layers outside the model: %s", rigllama_last_error());
    CHECK(rigllama_engine_set_control_vector(engine, NULL, 1.0f, 0, 0) == RIGLLAMA_STATUS_NULL_ARGUMENT, "NULL path");
    CHECK(rigllama_engine_clear_control_vector(engine) == RIGLLAMA_STATUS_OK, "clear");
    CHECK(rigllama_engine_clear_control_vector(NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "NULL engine");
    rigllama_engine_reset(engine);
    char *back = complete(engine, &r);
    CHECK(back && base && strcmp(back, base) == 0, "cleared: the base model again");
    rigllama_string_free(base);
    rigllama_string_free(same);
    rigllama_string_free(steered);
    rigllama_string_free(back);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    guard_against_hangs(300);
    double started = now_ms();
    test_defaults();
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = argv[1];
    rigllama_engine *engine = create(&options);
    if (!engine) {
        return 1;
    }
    test_ranges(engine);
    test_knob_effects(engine);
    test_logprobs(engine);
    test_lora(engine, getenv("RIGLLAMA_LORA_DIR"));
    test_control_vector(engine, getenv("RIGLLAMA_CONTROL_VECTOR_DIR"));
    rigllama_engine_destroy(engine);
    test_kv_types_flash_attention_and_fit(argv[1]);
    printf("test_knobs: %d passed, %d failed (%.1f s)\n", passed, failed, (now_ms() - started) / 1e3);
    return failed ? 1 : 0;
}
