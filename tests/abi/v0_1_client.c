/* A program built against the frozen v0.1 header, run against whatever librigllama.so is
 * current: it proves that programs compiled for v0.1 keep working with every later library.
 *
 *   usage: v0_1_client MODEL.gguf
 *
 * It includes only tests/abi/rigllama-v0.1.h, a byte-for-byte copy of the header released as
 * v0.1 (never edit it), and uses the API the way a v0.1 program would: structs of exactly the
 * v0.1 size, initialised with the _init functions. Input structs sit in front of junk bytes
 * the library must never read; output structs sit in front of a canary the library must never
 * write. The last line is "v0_1_client: N passed, M failed"; the exit status is 0 only when M
 * is 0. An alarm() guard turns a hang into a failure. */
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rigllama-v0.1.h"

#if RIGLLAMA_VERSION_MAJOR != 0 || RIGLLAMA_VERSION_MINOR != 1 || RIGLLAMA_VERSION_PATCH != 0
#error "tests/abi/rigllama-v0.1.h must be the v0.1.0 header, unchanged"
#endif

/* ---- checks -------------------------------------------------------------------------- */

static volatile sig_atomic_t passed, failed;

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (cond) {                                                                            \
            passed++;                                                                          \
        } else {                                                                               \
            failed++;                                                                          \
            printf("FAIL %s:%d: %s -- ", __FILE__, __LINE__, #cond);                           \
            printf(__VA_ARGS__);                                                               \
            printf(" (last error: %s)\n", rigllama_last_error());                             \
        }                                                                                      \
    } while (0)

#define HANG_SECONDS 300

static void put_text(char *line, size_t *at, const char *text) {
    while (*text)
        line[(*at)++] = *text++;
}

static void put_number(char *line, size_t *at, unsigned long value) {
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    while (n)
        line[(*at)++] = digits[--n];
}

/* Async-signal-safe: reports the hang and still ends with the summary line. */
static void on_alarm(int sig) {
    char line[160];
    size_t at = 0;
    (void)sig;
    put_text(line, &at, "FAIL v0_1_client: still running after ");
    put_number(line, &at, HANG_SECONDS);
    put_text(line, &at, " s (alarm)\nv0_1_client: ");
    put_number(line, &at, (unsigned long)passed);
    put_text(line, &at, " passed, ");
    put_number(line, &at, (unsigned long)failed + 1);
    put_text(line, &at, " failed\n");
    if (write(1, line, at) < 0) {
    }
    _exit(2);
}

/* ---- structs the way a v0.1 program lays them out ------------------------------------ */

#define TAIL 64
#define JUNK 0xFF /* after input structs: the library must not read it */
#define SEED 1234u
#define MAX_TOKENS 16u
#define CHAT_PROMPT "Name three fruits and say something about each."
#define RAW_PROMPT "The three primary colors are"

/* The tails follow the struct directly: unsigned char arrays need no padding before them. */
typedef struct {
    rigllama_engine_options options;
    unsigned char junk[TAIL];
} options_box;

typedef struct {
    rigllama_request request;
    unsigned char junk[TAIL];
} request_box;

typedef struct {
    rigllama_usage usage;
    unsigned char canary[TAIL];
} usage_box;

typedef struct {
    rigllama_event event;
    unsigned char canary[TAIL];
} event_box;

static unsigned char canary_byte(size_t i) {
    return (unsigned char)(0xA5 ^ (i * 29));
}

static void fill_canary(unsigned char *tail) {
    for (size_t i = 0; i < TAIL; i++)
        tail[i] = canary_byte(i);
}

static int canary_intact(const unsigned char *tail) {
    for (size_t i = 0; i < TAIL; i++)
        if (tail[i] != canary_byte(i))
            return 0;
    return 1;
}

static int junk_intact(const unsigned char *tail) {
    for (size_t i = 0; i < TAIL; i++)
        if (tail[i] != JUNK)
            return 0;
    return 1;
}

static int all_bytes(const void *p, size_t n, unsigned char value) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != value)
            return 0;
    return 1;
}

static void new_usage(usage_box *box) {
    memset(&box->usage, 0x77, sizeof box->usage);
    fill_canary(box->canary);
    CHECK(rigllama_usage_init(&box->usage, sizeof box->usage) == RIGLLAMA_STATUS_OK, "usage_init");
}

static void new_event(event_box *box) {
    memset(&box->event, 0x77, sizeof box->event);
    fill_canary(box->canary);
    CHECK(rigllama_event_init(&box->event, sizeof box->event) == RIGLLAMA_STATUS_OK, "event_init");
}

/* A deterministic request: greedy, fixed seed, junk after it. */
static void greedy(request_box *box, const char *prompt, uint32_t raw_prompt, uint32_t max_tokens) {
    memset(box, JUNK, sizeof *box);
    rigllama_request_init(&box->request, sizeof box->request);
    box->request.prompt = prompt;
    box->request.raw_prompt = raw_prompt;
    box->request.temperature = 0.0f;
    box->request.max_tokens = max_tokens;
    box->request.seed = SEED;
}

typedef struct {
    unsigned magic;
    int calls;
    int out_of_range;
    float last;
} progress_state;

#define MAGIC 0x5EEDu

static int32_t on_progress(void *user_data, float fraction) {
    progress_state *p = user_data;
    if (p->magic != MAGIC)
        return 0;
    p->calls++;
    p->last = fraction;
    if (!(fraction >= 0.0f && fraction <= 1.0f))
        p->out_of_range++;
    return 0;
}

static const char *model_path;
static progress_state progress;

static void engine_options(options_box *box) {
    memset(box, JUNK, sizeof *box);
    rigllama_engine_options_init(&box->options, sizeof box->options);
    box->options.model_path = model_path;
    box->options.n_ctx = 1024;
    box->options.n_batch = 256;
    box->options.on_progress = on_progress;
    box->options.progress_user_data = &progress;
}

static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len == 0 || i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
        i += len;
    }
    return 1;
}

static char *copy_text(const char *text) {
    size_t len = strlen(text);
    char *copy = malloc(len + 1);
    if (!copy) {
        printf("FAIL: out of memory\n");
        exit(1);
    }
    memcpy(copy, text, len + 1);
    return copy;
}

static int finite_non_negative(double x) {
    return x == x && x >= 0.0 && x < 1e12;
}

/* The number after "key": in a JSON object, or -1. */
static long json_number(const char *json, const char *key) {
    char quoted[64];
    snprintf(quoted, sizeof quoted, "\"%s\"", key);
    const char *p = strstr(json, quoted);
    if (!p)
        return -1;
    p += strlen(quoted);
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    if (*p++ != ':')
        return -1;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    char *end = NULL;
    long value = strtol(p, &end, 10);
    return end == p ? -1 : value;
}

/* ---- layout -------------------------------------------------------------------------- */

typedef struct {
    const char *what;
    size_t actual, expected;
} layout_row;

#define SIZE_ROW(T, n) {"sizeof(" #T ")", sizeof(T), n}
#define OFFSET_ROW(T, f, n) {#T "." #f, offsetof(T, f), n}

static void test_layout(void) {
#if defined(__x86_64__)
    static const layout_row rows[] = {
        SIZE_ROW(rigllama_engine_options, 56),
        OFFSET_ROW(rigllama_engine_options, struct_size, 0),
        OFFSET_ROW(rigllama_engine_options, n_ctx, 4),
        OFFSET_ROW(rigllama_engine_options, n_batch, 8),
        OFFSET_ROW(rigllama_engine_options, n_threads, 12),
        OFFSET_ROW(rigllama_engine_options, n_gpu_layers, 16),
        OFFSET_ROW(rigllama_engine_options, model_path, 24),
        OFFSET_ROW(rigllama_engine_options, chat_template, 32),
        OFFSET_ROW(rigllama_engine_options, on_progress, 40),
        OFFSET_ROW(rigllama_engine_options, progress_user_data, 48),

        SIZE_ROW(rigllama_request, 80),
        OFFSET_ROW(rigllama_request, struct_size, 0),
        OFFSET_ROW(rigllama_request, max_tokens, 4),
        OFFSET_ROW(rigllama_request, temperature, 8),
        OFFSET_ROW(rigllama_request, top_p, 12),
        OFFSET_ROW(rigllama_request, top_k, 16),
        OFFSET_ROW(rigllama_request, min_p, 20),
        OFFSET_ROW(rigllama_request, repeat_penalty, 24),
        OFFSET_ROW(rigllama_request, seed, 28),
        OFFSET_ROW(rigllama_request, raw_prompt, 32),
        OFFSET_ROW(rigllama_request, prompt, 40),
        OFFSET_ROW(rigllama_request, system_prompt, 48),
        OFFSET_ROW(rigllama_request, messages_json, 56),
        OFFSET_ROW(rigllama_request, stop, 64),
        OFFSET_ROW(rigllama_request, n_stop, 72),

        SIZE_ROW(rigllama_usage, 40),
        OFFSET_ROW(rigllama_usage, struct_size, 0),
        OFFSET_ROW(rigllama_usage, finish_reason, 4),
        OFFSET_ROW(rigllama_usage, prompt_tokens, 8),
        OFFSET_ROW(rigllama_usage, cached_prompt_tokens, 12),
        OFFSET_ROW(rigllama_usage, completion_tokens, 16),
        OFFSET_ROW(rigllama_usage, seed, 20),
        OFFSET_ROW(rigllama_usage, prompt_ms, 24),
        OFFSET_ROW(rigllama_usage, generation_ms, 32),

        SIZE_ROW(rigllama_event, 40),
        OFFSET_ROW(rigllama_event, struct_size, 0),
        OFFSET_ROW(rigllama_event, kind, 4),
        OFFSET_ROW(rigllama_event, status, 8),
        OFFSET_ROW(rigllama_event, text, 16),
        OFFSET_ROW(rigllama_event, text_len, 24),
        OFFSET_ROW(rigllama_event, message, 32),
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        CHECK(rows[i].actual == rows[i].expected, "%s is %zu, v0.1 has %zu", rows[i].what, rows[i].actual,
              rows[i].expected);
#endif

    /* On every platform: struct_size is a uint32_t at offset 0, fields in declaration order,
     * and the enum-like types are 32 bits. */
    static const layout_row any_platform[] = {
        OFFSET_ROW(rigllama_engine_options, struct_size, 0),
        OFFSET_ROW(rigllama_request, struct_size, 0),
        OFFSET_ROW(rigllama_usage, struct_size, 0),
        OFFSET_ROW(rigllama_event, struct_size, 0),
        {"sizeof(rigllama_engine_options.struct_size)", sizeof(((rigllama_engine_options *)0)->struct_size), 4},
        {"sizeof(rigllama_request.struct_size)", sizeof(((rigllama_request *)0)->struct_size), 4},
        {"sizeof(rigllama_usage.struct_size)", sizeof(((rigllama_usage *)0)->struct_size), 4},
        {"sizeof(rigllama_event.struct_size)", sizeof(((rigllama_event *)0)->struct_size), 4},
        SIZE_ROW(rigllama_status, 4),
        SIZE_ROW(rigllama_finish_reason, 4),
        SIZE_ROW(rigllama_event_kind, 4),
    };
    for (size_t i = 0; i < sizeof any_platform / sizeof any_platform[0]; i++)
        CHECK(any_platform[i].actual == any_platform[i].expected, "%s is %zu, v0.1 has %zu", any_platform[i].what,
              any_platform[i].actual, any_platform[i].expected);

    static const size_t options_order[] = {
        offsetof(rigllama_engine_options, struct_size), offsetof(rigllama_engine_options, n_ctx),
        offsetof(rigllama_engine_options, n_batch), offsetof(rigllama_engine_options, n_threads),
        offsetof(rigllama_engine_options, n_gpu_layers), offsetof(rigllama_engine_options, model_path),
        offsetof(rigllama_engine_options, chat_template), offsetof(rigllama_engine_options, on_progress),
        offsetof(rigllama_engine_options, progress_user_data), sizeof(rigllama_engine_options)};
    static const size_t request_order[] = {
        offsetof(rigllama_request, struct_size), offsetof(rigllama_request, max_tokens),
        offsetof(rigllama_request, temperature), offsetof(rigllama_request, top_p),
        offsetof(rigllama_request, top_k), offsetof(rigllama_request, min_p),
        offsetof(rigllama_request, repeat_penalty), offsetof(rigllama_request, seed),
        offsetof(rigllama_request, raw_prompt), offsetof(rigllama_request, prompt),
        offsetof(rigllama_request, system_prompt), offsetof(rigllama_request, messages_json),
        offsetof(rigllama_request, stop), offsetof(rigllama_request, n_stop), sizeof(rigllama_request)};
    static const size_t usage_order[] = {
        offsetof(rigllama_usage, struct_size), offsetof(rigllama_usage, finish_reason),
        offsetof(rigllama_usage, prompt_tokens), offsetof(rigllama_usage, cached_prompt_tokens),
        offsetof(rigllama_usage, completion_tokens), offsetof(rigllama_usage, seed),
        offsetof(rigllama_usage, prompt_ms), offsetof(rigllama_usage, generation_ms), sizeof(rigllama_usage)};
    static const size_t event_order[] = {
        offsetof(rigllama_event, struct_size), offsetof(rigllama_event, kind), offsetof(rigllama_event, status),
        offsetof(rigllama_event, text), offsetof(rigllama_event, text_len), offsetof(rigllama_event, message),
        sizeof(rigllama_event)};
    static const struct {
        const char *name;
        const size_t *offsets;
        size_t n;
    } orders[] = {
        {"rigllama_engine_options", options_order, sizeof options_order / sizeof options_order[0]},
        {"rigllama_request", request_order, sizeof request_order / sizeof request_order[0]},
        {"rigllama_usage", usage_order, sizeof usage_order / sizeof usage_order[0]},
        {"rigllama_event", event_order, sizeof event_order / sizeof event_order[0]},
    };
    for (size_t s = 0; s < sizeof orders / sizeof orders[0]; s++) {
        int in_order = 1;
        for (size_t i = 1; i < orders[s].n; i++)
            in_order &= orders[s].offsets[i - 1] < orders[s].offsets[i];
        CHECK(in_order, "%s: fields out of declaration order", orders[s].name);
    }

    /* The tails used below start right where the v0.1 struct ends. */
    CHECK(offsetof(options_box, junk) == sizeof(rigllama_engine_options), "options tail");
    CHECK(offsetof(request_box, junk) == sizeof(rigllama_request), "request tail");
    CHECK(offsetof(usage_box, canary) == sizeof(rigllama_usage), "usage tail");
    CHECK(offsetof(event_box, canary) == sizeof(rigllama_event), "event tail");
}

/* ---- version and status text ----------------------------------------------------------- */

static void test_version_and_status_text(void) {
    const char *version = rigllama_version();
    CHECK(version != NULL && version[0] != '\0', "rigllama_version");
    if (!version)
        return;
    printf("  library %s, header %d.%d.%d\n", version, RIGLLAMA_VERSION_MAJOR, RIGLLAMA_VERSION_MINOR,
           RIGLLAMA_VERSION_PATCH);
    unsigned long part[3] = {0, 0, 0};
    static const unsigned long header[3] = {RIGLLAMA_VERSION_MAJOR, RIGLLAMA_VERSION_MINOR, RIGLLAMA_VERSION_PATCH};
    const char *p = version;
    int parsed = 1;
    for (int i = 0; i < 3 && parsed; i++) {
        char *end = NULL;
        parsed = *p >= '0' && *p <= '9';
        if (parsed) {
            part[i] = strtoul(p, &end, 10);
            p = end;
        }
        if (parsed && i < 2)
            parsed = *p++ == '.';
    }
    CHECK(parsed, "version \"%s\" is MAJOR.MINOR.PATCH", version);
    int at_least_header = 1;
    for (int i = 0; i < 3; i++)
        if (part[i] != header[i]) {
            at_least_header = part[i] > header[i];
            break;
        }
    CHECK(parsed && at_least_header, "library %s is older than the v0.1.0 header", version);

    static const rigllama_status known[] = {
        RIGLLAMA_STATUS_OK,
        RIGLLAMA_STATUS_NULL_ARGUMENT,
        RIGLLAMA_STATUS_INVALID_ARGUMENT,
        RIGLLAMA_STATUS_MODEL_LOAD_FAILED,
        RIGLLAMA_STATUS_CONTEXT_OVERFLOW,
        RIGLLAMA_STATUS_CANCELLED,
        RIGLLAMA_STATUS_BUSY,
        RIGLLAMA_STATUS_SHUT_DOWN,
        RIGLLAMA_STATUS_INTERNAL,
    };
    const size_t n_known = sizeof known / sizeof known[0];
    const char *text[sizeof known / sizeof known[0]];
    for (size_t i = 0; i < n_known; i++) {
        text[i] = rigllama_status_str(known[i]);
        CHECK(text[i] != NULL && text[i][0] != '\0', "status_str(%d)", (int)known[i]);
    }
    int distinct = 1;
    for (size_t i = 0; i < n_known; i++)
        for (size_t k = i + 1; k < n_known; k++)
            distinct &= text[i] && text[k] && strcmp(text[i], text[k]) != 0;
    CHECK(distinct, "each status has its own description");

    /* Unknown numbers (later versions may add statuses, so pick ones never to be used). */
    static const rigllama_status unknown[] = {-1, INT32_MAX, INT32_MIN};
    for (size_t u = 0; u < sizeof unknown / sizeof unknown[0]; u++) {
        const char *s = rigllama_status_str(unknown[u]);
        int differs = s != NULL && s[0] != '\0';
        for (size_t i = 0; i < n_known && differs; i++)
            differs = text[i] == NULL || strcmp(s, text[i]) != 0;
        CHECK(differs, "status_str(%d) = \"%s\" is not a known status's text", (int)unknown[u], s ? s : "(null)");
    }
}

/* ---- init functions and struct_size ------------------------------------------------------ */

static void test_init_functions(void) {
    request_box rb;
    memset(&rb, JUNK, sizeof rb);
    CHECK(rigllama_request_init(&rb.request, sizeof rb.request) == RIGLLAMA_STATUS_OK, "request_init");
    CHECK(rb.request.struct_size == sizeof(rigllama_request), "request struct_size %u", rb.request.struct_size);
    CHECK(rb.request.max_tokens == 512 && rb.request.top_k == 40 && rb.request.seed == RIGLLAMA_SEED_RANDOM &&
              rb.request.raw_prompt == 0,
          "request defaults: max_tokens %u top_k %d seed %u raw_prompt %u", rb.request.max_tokens, rb.request.top_k,
          rb.request.seed, rb.request.raw_prompt);
    CHECK(rb.request.temperature > 0.79f && rb.request.temperature < 0.81f && rb.request.top_p > 0.94f &&
              rb.request.top_p < 0.96f && rb.request.min_p > 0.049f && rb.request.min_p < 0.051f &&
              rb.request.repeat_penalty == 1.0f,
          "request sampling defaults %f %f %f %f", rb.request.temperature, rb.request.top_p, rb.request.min_p,
          rb.request.repeat_penalty);
    CHECK(rb.request.prompt == NULL && rb.request.system_prompt == NULL && rb.request.messages_json == NULL &&
              rb.request.stop == NULL && rb.request.n_stop == 0,
          "request pointer defaults");
    CHECK(junk_intact(rb.junk), "request_init wrote past the v0.1 size");

    options_box ob;
    memset(&ob, JUNK, sizeof ob);
    CHECK(rigllama_engine_options_init(&ob.options, sizeof ob.options) == RIGLLAMA_STATUS_OK,
          "engine_options_init with the v0.1 size");
    CHECK(ob.options.struct_size == sizeof(rigllama_engine_options), "options struct_size %u", ob.options.struct_size);
    CHECK(ob.options.n_ctx == 4096 && ob.options.n_batch == 512 && ob.options.n_threads == 0 &&
              ob.options.n_gpu_layers == 0,
          "options defaults: n_ctx %u n_batch %u n_threads %d n_gpu_layers %d", ob.options.n_ctx, ob.options.n_batch,
          ob.options.n_threads, ob.options.n_gpu_layers);
    CHECK(ob.options.model_path == NULL && ob.options.chat_template == NULL && ob.options.on_progress == NULL &&
              ob.options.progress_user_data == NULL,
          "options pointer defaults");
    CHECK(junk_intact(ob.junk), "engine_options_init wrote past the v0.1 size");

    usage_box ub;
    new_usage(&ub);
    CHECK(ub.usage.struct_size == sizeof(rigllama_usage), "usage struct_size %u", ub.usage.struct_size);
    CHECK(ub.usage.finish_reason == 0 && ub.usage.prompt_tokens == 0 && ub.usage.cached_prompt_tokens == 0 &&
              ub.usage.completion_tokens == 0 && ub.usage.seed == 0 && ub.usage.prompt_ms == 0.0 &&
              ub.usage.generation_ms == 0.0,
          "usage_init zeroes the rest");
    CHECK(canary_intact(ub.canary), "usage_init wrote past the v0.1 size");

    event_box eb;
    new_event(&eb);
    CHECK(eb.event.struct_size == sizeof(rigllama_event), "event struct_size %u", eb.event.struct_size);
    CHECK(canary_intact(eb.canary), "event_init wrote past the v0.1 size");

    /* Smaller than v0.1: refused, and nothing written. */
    memset(&rb.request, 0x5A, sizeof rb.request);
    CHECK(rigllama_request_init(&rb.request, sizeof rb.request - 1) == RIGLLAMA_STATUS_INVALID_ARGUMENT,
          "request_init below the v0.1 size");
    CHECK(rigllama_last_error()[0] != '\0', "an error message");
    CHECK(all_bytes(&rb.request, sizeof rb.request, 0x5A), "request untouched on failure");
    memset(&ob.options, 0x5A, sizeof ob.options);
    CHECK(rigllama_engine_options_init(&ob.options, sizeof ob.options - 1) == RIGLLAMA_STATUS_INVALID_ARGUMENT,
          "engine_options_init below the v0.1 size");
    CHECK(all_bytes(&ob.options, sizeof ob.options, 0x5A), "options untouched on failure");
}

/* ---- engines that cannot be created ------------------------------------------------------ */

static void test_create_failures(void) {
    options_box ob;
    engine_options(&ob);
    rigllama_engine *engine = (rigllama_engine *)&ob;

    ob.options.struct_size = (uint32_t)sizeof(rigllama_engine_options) - 1;
    CHECK(rigllama_engine_create(&ob.options, &engine) == RIGLLAMA_STATUS_INVALID_ARGUMENT,
          "options.struct_size below the v0.1 size");
    CHECK(engine == NULL, "out_engine NULL on failure");
    CHECK(rigllama_last_error()[0] != '\0', "an error message");
    ob.options.struct_size = 0;
    engine = (rigllama_engine *)&ob;
    CHECK(rigllama_engine_create(&ob.options, &engine) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "struct_size 0");
    CHECK(engine == NULL, "out_engine NULL on failure");

    engine_options(&ob);
    ob.options.n_ctx = 0;
    CHECK(rigllama_engine_create(&ob.options, &engine) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "n_ctx 0");
    engine_options(&ob);
    ob.options.n_threads = -3;
    CHECK(rigllama_engine_create(&ob.options, &engine) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "n_threads -3");

    engine_options(&ob);
    ob.options.model_path = "/nonexistent/rigllama-v0.1-abi/model.gguf";
    engine = (rigllama_engine *)&ob;
    CHECK(rigllama_engine_create(&ob.options, &engine) == RIGLLAMA_STATUS_MODEL_LOAD_FAILED, "missing model file");
    CHECK(engine == NULL, "out_engine NULL on failure");
    CHECK(strstr(rigllama_last_error(), "/nonexistent/rigllama-v0.1-abi/model.gguf") != NULL,
          "the message names the file: %s", rigllama_last_error());
    CHECK(junk_intact(ob.junk), "create wrote into its input");
}

/* ---- NULL arguments ---------------------------------------------------------------------- */

static int32_t keep_going(void *user_data, const char *piece, size_t len) {
    (void)user_data;
    (void)piece;
    (void)len;
    return 0;
}

static void test_null_arguments(rigllama_engine *engine) {
    options_box ob;
    engine_options(&ob);
    request_box rb;
    greedy(&rb, "Hello", 1, 2);
    usage_box ub;
    new_usage(&ub);
    usage_box ub_before;
    memcpy(&ub_before, &ub, sizeof ub);
    event_box eb;
    new_event(&eb);
    event_box eb_before;
    memcpy(&eb_before, &eb, sizeof eb);
    rigllama_engine *out_engine = (rigllama_engine *)&ob;
    rigllama_job *job = (rigllama_job *)&rb;
    char *text = (char *)"sentinel";
    uint32_t tokens = 0;

    CHECK(rigllama_engine_options_init(NULL, sizeof(rigllama_engine_options)) == RIGLLAMA_STATUS_NULL_ARGUMENT,
          "options_init");
    CHECK(rigllama_request_init(NULL, sizeof(rigllama_request)) == RIGLLAMA_STATUS_NULL_ARGUMENT, "request_init");
    CHECK(rigllama_usage_init(NULL, sizeof(rigllama_usage)) == RIGLLAMA_STATUS_NULL_ARGUMENT, "usage_init");
    CHECK(rigllama_event_init(NULL, sizeof(rigllama_event)) == RIGLLAMA_STATUS_NULL_ARGUMENT, "event_init");

    CHECK(rigllama_engine_create(NULL, &out_engine) == RIGLLAMA_STATUS_NULL_ARGUMENT, "create options");
    CHECK(out_engine == NULL, "out_engine NULL on failure");
    CHECK(rigllama_last_error()[0] != '\0', "an error message after NULL_ARGUMENT");
    CHECK(rigllama_engine_create(&ob.options, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "create out_engine");
    ob.options.model_path = NULL;
    CHECK(rigllama_engine_create(&ob.options, &out_engine) == RIGLLAMA_STATUS_NULL_ARGUMENT, "create model_path");
    CHECK(rigllama_engine_reload(engine, &ob.options) == RIGLLAMA_STATUS_NULL_ARGUMENT, "reload model_path");
    CHECK(rigllama_engine_reload(NULL, &ob.options) == RIGLLAMA_STATUS_NULL_ARGUMENT, "reload engine");
    CHECK(rigllama_engine_reload(engine, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "reload options");

    CHECK(rigllama_engine_complete(NULL, &rb.request, &text, &ub.usage) == RIGLLAMA_STATUS_NULL_ARGUMENT,
          "complete engine");
    CHECK(text == NULL, "out_text NULL on failure");
    CHECK(rigllama_engine_complete(engine, NULL, &text, &ub.usage) == RIGLLAMA_STATUS_NULL_ARGUMENT,
          "complete request");
    CHECK(rigllama_engine_complete(engine, &rb.request, NULL, &ub.usage) == RIGLLAMA_STATUS_NULL_ARGUMENT,
          "complete out_text");
    CHECK(rigllama_engine_stream(NULL, &rb.request, keep_going, NULL, &ub.usage) == RIGLLAMA_STATUS_NULL_ARGUMENT,
          "stream engine");
    CHECK(rigllama_engine_stream(engine, NULL, keep_going, NULL, &ub.usage) == RIGLLAMA_STATUS_NULL_ARGUMENT,
          "stream request");
    CHECK(rigllama_engine_stream(engine, &rb.request, NULL, NULL, &ub.usage) == RIGLLAMA_STATUS_NULL_ARGUMENT,
          "stream callback");
    CHECK(memcmp(&ub, &ub_before, sizeof ub) == 0, "usage untouched on failure");

    CHECK(rigllama_engine_cancel(NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "cancel");
    CHECK(rigllama_engine_reset(NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "reset");
    CHECK(rigllama_engine_count_tokens(NULL, &rb.request, &tokens) == RIGLLAMA_STATUS_NULL_ARGUMENT, "count engine");
    CHECK(rigllama_engine_count_tokens(engine, NULL, &tokens) == RIGLLAMA_STATUS_NULL_ARGUMENT, "count request");
    CHECK(rigllama_engine_count_tokens(engine, &rb.request, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "count out");
    text = (char *)"sentinel";
    CHECK(rigllama_engine_describe(NULL, &text) == RIGLLAMA_STATUS_NULL_ARGUMENT, "describe engine");
    CHECK(text == NULL, "out_json NULL on failure");
    CHECK(rigllama_engine_describe(engine, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "describe out");

    CHECK(rigllama_engine_submit(NULL, &rb.request, &job) == RIGLLAMA_STATUS_NULL_ARGUMENT, "submit engine");
    CHECK(job == NULL, "out_job NULL on failure");
    CHECK(rigllama_engine_submit(engine, NULL, &job) == RIGLLAMA_STATUS_NULL_ARGUMENT, "submit request");
    CHECK(rigllama_engine_submit(engine, &rb.request, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "submit out");
    CHECK(rigllama_job_poll(NULL, 0, &eb.event) == RIGLLAMA_STATUS_NULL_ARGUMENT, "poll job");
    CHECK(memcmp(&eb, &eb_before, sizeof eb) == 0, "event untouched on failure");
    CHECK(rigllama_job_usage(NULL, &ub.usage) == RIGLLAMA_STATUS_NULL_ARGUMENT, "job_usage job");
    CHECK(memcmp(&ub, &ub_before, sizeof ub) == 0, "usage untouched on failure");
    CHECK(rigllama_job_cancel(NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "job_cancel");

    /* A NULL prompt with no messages is a missing pointer. */
    rb.request.prompt = NULL;
    CHECK(rigllama_engine_complete(engine, &rb.request, &text, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "NULL prompt");

    rigllama_engine_destroy(NULL);
    rigllama_job_free(NULL);
    rigllama_string_free(NULL);
    rigllama_set_log_callback(NULL, NULL, 0);
    CHECK(junk_intact(rb.junk) && junk_intact(ob.junk), "inputs untouched");
}

/* ---- bad requests -------------------------------------------------------------------------- */

typedef struct {
    unsigned magic;
    char text[8192];
    size_t len;
    int pieces;
    int bad_pieces;
    int stop_after; /* return non-zero at this piece (0 = never) */
} collector;

static int32_t collect(void *user_data, const char *piece, size_t len) {
    collector *c = user_data;
    if (c->magic != MAGIC)
        return 1;
    c->pieces++;
    if (piece == NULL || len == 0 || strlen(piece) != len || !valid_utf8((const unsigned char *)piece, len)) {
        c->bad_pieces++;
    } else if (c->len + len < sizeof c->text) {
        memcpy(c->text + c->len, piece, len);
        c->len += len;
        c->text[c->len] = '\0';
    }
    return c->stop_after && c->pieces >= c->stop_after;
}

static void expect_invalid(rigllama_engine *engine, request_box *rb, const char *what) {
    usage_box ub;
    new_usage(&ub);
    usage_box before;
    memcpy(&before, &ub, sizeof ub);
    char *text = (char *)"sentinel";
    rigllama_status status = rigllama_engine_complete(engine, &rb->request, &text, &ub.usage);
    CHECK(status == RIGLLAMA_STATUS_INVALID_ARGUMENT, "%s: complete returned %d", what, (int)status);
    CHECK(text == NULL, "%s: out_text NULL on failure", what);
    CHECK(rigllama_last_error()[0] != '\0', "%s: an error message", what);
    CHECK(memcmp(&ub, &before, sizeof ub) == 0, "%s: usage untouched on failure", what);
}

static void test_bad_requests(rigllama_engine *engine) {
    request_box rb;

    /* struct_size below v0.1, on every call that takes a request. */
    greedy(&rb, "Hello", 1, 2);
    rb.request.struct_size = (uint32_t)sizeof(rigllama_request) - 1;
    expect_invalid(engine, &rb, "request.struct_size below the v0.1 size");
    uint32_t tokens = 0;
    CHECK(rigllama_engine_count_tokens(engine, &rb.request, &tokens) == RIGLLAMA_STATUS_INVALID_ARGUMENT,
          "count_tokens: struct_size below the v0.1 size");
    rigllama_job *job = (rigllama_job *)&rb;
    CHECK(rigllama_engine_submit(engine, &rb.request, &job) == RIGLLAMA_STATUS_INVALID_ARGUMENT,
          "submit: struct_size below the v0.1 size");
    CHECK(job == NULL, "out_job NULL on failure");
    collector c;
    memset(&c, 0, sizeof c);
    c.magic = MAGIC;
    CHECK(rigllama_engine_stream(engine, &rb.request, collect, &c, NULL) == RIGLLAMA_STATUS_INVALID_ARGUMENT,
          "stream: struct_size below the v0.1 size");
    CHECK(c.pieces == 0, "no callback on failure");
    greedy(&rb, "Hello", 1, 2);
    rb.request.struct_size = 0;
    expect_invalid(engine, &rb, "request.struct_size 0");

    /* Out-of-range fields: the library reads each at its v0.1 offset. */
    greedy(&rb, "Hello", 1, 0);
    expect_invalid(engine, &rb, "max_tokens 0");
    greedy(&rb, "Hello", 1, 2);
    rb.request.temperature = -1.0f;
    expect_invalid(engine, &rb, "temperature -1");
    greedy(&rb, "Hello", 1, 2);
    rb.request.top_p = 1.5f;
    expect_invalid(engine, &rb, "top_p 1.5");
    greedy(&rb, "Hello", 1, 2);
    rb.request.min_p = 2.0f;
    expect_invalid(engine, &rb, "min_p 2");
    greedy(&rb, "Hello", 1, 2);
    rb.request.repeat_penalty = 0.0f;
    expect_invalid(engine, &rb, "repeat_penalty 0");
    greedy(&rb, "Hello", 2, 2);
    expect_invalid(engine, &rb, "raw_prompt 2");
    greedy(&rb, "Hello", 1, 2);
    rb.request.system_prompt = "be brief";
    expect_invalid(engine, &rb, "raw_prompt with system_prompt");
    greedy(&rb, "Hello", 0, 2);
    rb.request.messages_json = "[{\"role\":\"user\",\"content\":";
    expect_invalid(engine, &rb, "bad messages_json");
    greedy(&rb, "Hello", 1, 2);
    static const char *const empty_stop[] = {""};
    rb.request.stop = empty_stop;
    rb.request.n_stop = 1;
    expect_invalid(engine, &rb, "an empty stop string");
    CHECK(junk_intact(rb.junk), "inputs untouched");
}

/* ---- generation -------------------------------------------------------------------------- */

typedef struct {
    char *text;
    rigllama_usage usage;
} reference;

static void check_usage(const usage_box *ub, const char *what, uint32_t max_tokens) {
    const rigllama_usage *u = &ub->usage;
    CHECK(u->struct_size == sizeof(rigllama_usage), "%s: usage.struct_size changed to %u", what, u->struct_size);
    CHECK(u->finish_reason == RIGLLAMA_FINISH_REASON_STOP || u->finish_reason == RIGLLAMA_FINISH_REASON_LENGTH,
          "%s: finish_reason %d", what, (int)u->finish_reason);
    CHECK(u->prompt_tokens > 0, "%s: prompt_tokens %u", what, u->prompt_tokens);
    CHECK(u->cached_prompt_tokens <= u->prompt_tokens, "%s: cached %u of %u", what, u->cached_prompt_tokens,
          u->prompt_tokens);
    CHECK(u->completion_tokens > 0 && u->completion_tokens <= max_tokens, "%s: completion_tokens %u", what,
          u->completion_tokens);
    CHECK(u->seed == SEED, "%s: seed %u", what, u->seed);
    CHECK(finite_non_negative(u->prompt_ms) && finite_non_negative(u->generation_ms), "%s: timings %f %f", what,
          u->prompt_ms, u->generation_ms);
    CHECK(canary_intact(ub->canary), "%s: wrote past the v0.1 rigllama_usage", what);
}

static reference test_complete(rigllama_engine *engine) {
    reference ref;
    request_box rb;
    greedy(&rb, CHAT_PROMPT, 0, MAX_TOKENS);
    usage_box ub;
    new_usage(&ub);
    char *text = NULL;
    CHECK(rigllama_engine_reset(engine) == RIGLLAMA_STATUS_OK, "reset");
    rigllama_status status = rigllama_engine_complete(engine, &rb.request, &text, &ub.usage);
    CHECK(status == RIGLLAMA_STATUS_OK, "complete returned %d", (int)status);
    CHECK(strcmp(rigllama_last_error(), "") == 0, "last_error \"\" after success, got \"%s\"", rigllama_last_error());
    CHECK(text != NULL && text[0] != '\0', "non-empty text");
    CHECK(text && valid_utf8((const unsigned char *)text, strlen(text)), "text is UTF-8");
    check_usage(&ub, "complete", MAX_TOKENS);
    CHECK(ub.usage.cached_prompt_tokens == 0, "nothing cached after reset: %u", ub.usage.cached_prompt_tokens);
    CHECK(junk_intact(rb.junk), "complete wrote into its request");
    printf("  greedy reply (%u+%u tokens): %s\n", ub.usage.prompt_tokens, ub.usage.completion_tokens,
           text ? text : "(null)");

    uint32_t counted = 0;
    CHECK(rigllama_engine_count_tokens(engine, &rb.request, &counted) == RIGLLAMA_STATUS_OK, "count_tokens");
    CHECK(counted == ub.usage.prompt_tokens, "count_tokens %u == prompt_tokens %u", counted, ub.usage.prompt_tokens);

    ref.text = copy_text(text ? text : "");
    ref.usage = ub.usage;
    rigllama_string_free(text);
    return ref;
}

static void test_stream(rigllama_engine *engine, const reference *ref) {
    request_box rb;
    greedy(&rb, CHAT_PROMPT, 0, MAX_TOKENS);
    usage_box ub;
    new_usage(&ub);
    collector c;
    memset(&c, 0, sizeof c);
    c.magic = MAGIC;
    CHECK(rigllama_engine_reset(engine) == RIGLLAMA_STATUS_OK, "reset");
    rigllama_status status = rigllama_engine_stream(engine, &rb.request, collect, &c, &ub.usage);
    CHECK(status == RIGLLAMA_STATUS_OK, "stream returned %d", (int)status);
    CHECK(c.pieces > 0, "%d pieces", c.pieces);
    CHECK(c.bad_pieces == 0, "%d pieces not NUL-terminated, non-empty, whole UTF-8", c.bad_pieces);
    CHECK(strcmp(c.text, ref->text) == 0, "stream == complete:\n[%s]\n[%s]", c.text, ref->text);
    check_usage(&ub, "stream", MAX_TOKENS);
    CHECK(ub.usage.completion_tokens == ref->usage.completion_tokens &&
              ub.usage.prompt_tokens == ref->usage.prompt_tokens && ub.usage.finish_reason == ref->usage.finish_reason,
          "stream usage %u+%u (%d) vs complete %u+%u (%d)", ub.usage.prompt_tokens, ub.usage.completion_tokens,
          (int)ub.usage.finish_reason, ref->usage.prompt_tokens, ref->usage.completion_tokens,
          (int)ref->usage.finish_reason);
    printf("  stream: %d pieces\n", c.pieces);

    /* The callback stops generation: OK with finish reason CALLBACK, no call after. */
    new_usage(&ub);
    memset(&c, 0, sizeof c);
    c.magic = MAGIC;
    c.stop_after = 1;
    status = rigllama_engine_stream(engine, &rb.request, collect, &c, &ub.usage);
    CHECK(status == RIGLLAMA_STATUS_OK, "stopped stream returned %d", (int)status);
    CHECK(ub.usage.finish_reason == RIGLLAMA_FINISH_REASON_CALLBACK, "finish_reason %d", (int)ub.usage.finish_reason);
    CHECK(c.pieces == 1, "%d calls after returning non-zero at the first", c.pieces - 1);
    CHECK(ub.usage.struct_size == sizeof(rigllama_usage), "usage.struct_size changed");
    CHECK(canary_intact(ub.canary), "stopped stream wrote past the v0.1 rigllama_usage");
    CHECK(junk_intact(rb.junk), "stream wrote into its request");
}

static void test_job(rigllama_engine *engine, const reference *ref) {
    request_box rb;
    greedy(&rb, CHAT_PROMPT, 0, MAX_TOKENS);
    CHECK(rigllama_engine_reset(engine) == RIGLLAMA_STATUS_OK, "reset");
    rigllama_job *job = NULL;
    rigllama_status status = rigllama_engine_submit(engine, &rb.request, &job);
    CHECK(status == RIGLLAMA_STATUS_OK && job != NULL, "submit returned %d", (int)status);
    if (job == NULL)
        return;

    /* Before the end there is no usage (or the job was already done): untouched on refusal. */
    usage_box ub;
    new_usage(&ub);
    usage_box before;
    memcpy(&before, &ub, sizeof ub);
    status = rigllama_job_usage(job, &ub.usage);
    CHECK(status == RIGLLAMA_STATUS_OK || status == RIGLLAMA_STATUS_INVALID_ARGUMENT, "early job_usage %d",
          (int)status);
    if (status != RIGLLAMA_STATUS_OK)
        CHECK(memcmp(&ub, &before, sizeof ub) == 0, "usage untouched on failure");
    CHECK(canary_intact(ub.canary), "early job_usage wrote past the v0.1 rigllama_usage");

    event_box eb;
    new_event(&eb);
    char text[8192] = "";
    size_t len = 0;
    int texts = 0, nones = 0, bad_text = 0, bad_kind = 0, canary_broken = 0, size_changed = 0;
    rigllama_status poll_status = RIGLLAMA_STATUS_OK;
    for (int polls = 0; polls < 100000; polls++) {
        poll_status = rigllama_job_poll(job, polls == 0 ? 0 : 250, &eb.event);
        canary_broken += !canary_intact(eb.canary);
        size_changed += eb.event.struct_size != sizeof(rigllama_event);
        if (poll_status != RIGLLAMA_STATUS_OK)
            break;
        if (eb.event.kind == RIGLLAMA_EVENT_KIND_NONE) {
            nones++;
        } else if (eb.event.kind == RIGLLAMA_EVENT_KIND_TEXT) {
            texts++;
            if (eb.event.text == NULL || eb.event.text_len == 0 || strlen(eb.event.text) != eb.event.text_len ||
                !valid_utf8((const unsigned char *)eb.event.text, eb.event.text_len)) {
                bad_text++;
            } else if (len + eb.event.text_len < sizeof text) {
                memcpy(text + len, eb.event.text, eb.event.text_len);
                len += eb.event.text_len;
                text[len] = '\0';
            }
        } else if (eb.event.kind == RIGLLAMA_EVENT_KIND_DONE || eb.event.kind == RIGLLAMA_EVENT_KIND_ERROR) {
            break;
        } else {
            bad_kind++;
            break;
        }
    }
    CHECK(poll_status == RIGLLAMA_STATUS_OK, "poll returned %d", (int)poll_status);
    CHECK(bad_kind == 0, "an event kind v0.1 does not know: %d", (int)eb.event.kind);
    CHECK(canary_broken == 0, "%d polls wrote past the v0.1 rigllama_event", canary_broken);
    CHECK(size_changed == 0, "%d polls changed event.struct_size", size_changed);
    CHECK(eb.event.kind == RIGLLAMA_EVENT_KIND_DONE && eb.event.status == RIGLLAMA_STATUS_OK,
          "final event kind %d status %d", (int)eb.event.kind, (int)eb.event.status);
    CHECK(eb.event.text != NULL && eb.event.text[0] == '\0' && eb.event.text_len == 0, "DONE carries text \"\"");
    CHECK(eb.event.message != NULL && eb.event.message[0] == '\0', "DONE carries message \"\"");
    CHECK(texts > 0 && bad_text == 0, "%d TEXT events, %d bad", texts, bad_text);
    CHECK(strcmp(text, ref->text) == 0, "job text == complete text:\n[%s]\n[%s]", text, ref->text);
    printf("  job: %d TEXT events, %d NONE\n", texts, nones);

    /* The final event repeats. */
    new_event(&eb);
    CHECK(rigllama_job_poll(job, 0, &eb.event) == RIGLLAMA_STATUS_OK, "poll after DONE");
    CHECK(eb.event.kind == RIGLLAMA_EVENT_KIND_DONE, "DONE again, got %d", (int)eb.event.kind);
    CHECK(canary_intact(eb.canary), "poll wrote past the v0.1 rigllama_event");

    new_usage(&ub);
    CHECK(rigllama_job_usage(job, &ub.usage) == RIGLLAMA_STATUS_OK, "job_usage after DONE");
    check_usage(&ub, "job_usage", MAX_TOKENS);
    CHECK(ub.usage.completion_tokens == ref->usage.completion_tokens &&
              ub.usage.prompt_tokens == ref->usage.prompt_tokens,
          "job usage %u+%u vs complete %u+%u", ub.usage.prompt_tokens, ub.usage.completion_tokens,
          ref->usage.prompt_tokens, ref->usage.completion_tokens);
    rigllama_job_free(job);
    CHECK(junk_intact(rb.junk), "submit wrote into its request");
}

static void test_cancel_idle_engine(rigllama_engine *engine, const reference *ref) {
    CHECK(rigllama_engine_cancel(engine) == RIGLLAMA_STATUS_OK, "cancel an idle engine");
    CHECK(strcmp(rigllama_last_error(), "") == 0, "last_error \"\" after cancel");
    request_box rb;
    greedy(&rb, CHAT_PROMPT, 0, MAX_TOKENS);
    char *text = NULL;
    CHECK(rigllama_engine_reset(engine) == RIGLLAMA_STATUS_OK, "reset");
    rigllama_status status = rigllama_engine_complete(engine, &rb.request, &text, NULL);
    CHECK(status == RIGLLAMA_STATUS_OK, "a request after cancel runs normally: %d", (int)status);
    CHECK(text && strcmp(text, ref->text) == 0, "same reply after cancel:\n[%s]\n[%s]", text ? text : "(null)",
          ref->text);
    rigllama_string_free(text);
}

static void test_describe(rigllama_engine *engine) {
    char *json = NULL;
    CHECK(rigllama_engine_describe(engine, &json) == RIGLLAMA_STATUS_OK, "describe");
    CHECK(json != NULL, "describe JSON");
    if (!json)
        return;
    const char *p = json;
    while (*p == ' ' || *p == '\n')
        p++;
    CHECK(*p == '{', "a JSON object: %s", json);
    static const char *const keys[] = {
        "model_path", "architecture", "n_ctx",        "n_ctx_train",   "n_batch",
        "n_vocab",    "n_params",     "n_threads",    "n_gpu_layers",  "chat_template",
        "chat_template_source",
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char quoted[64];
        snprintf(quoted, sizeof quoted, "\"%s\"", keys[i]);
        CHECK(strstr(json, quoted) != NULL, "describe has %s: %s", quoted, json);
    }
    /* The options were read at their v0.1 offsets. */
    long n_ctx = json_number(json, "n_ctx"), n_ctx_train = json_number(json, "n_ctx_train");
    long expected_ctx = n_ctx_train > 0 && n_ctx_train < 1024 ? n_ctx_train : 1024;
    CHECK(n_ctx == expected_ctx, "n_ctx %ld (asked 1024, n_ctx_train %ld)", n_ctx, n_ctx_train);
    CHECK(json_number(json, "n_batch") == 256, "n_batch %ld (asked 256)", json_number(json, "n_batch"));
    CHECK(json_number(json, "n_gpu_layers") == 0, "n_gpu_layers %ld", json_number(json, "n_gpu_layers"));
    CHECK(json_number(json, "n_threads") > 0, "n_threads %ld", json_number(json, "n_threads"));
    rigllama_string_free(json);
}

static void test_last_error(rigllama_engine *engine) {
    request_box rb;
    greedy(&rb, "Hello", 1, 2);
    uint32_t tokens = 0;
    CHECK(rigllama_engine_count_tokens(engine, &rb.request, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "an error");
    const char *message = rigllama_last_error();
    CHECK(message != NULL && message[0] != '\0', "last_error non-empty after an error");
    CHECK(rigllama_last_error() != NULL && strcmp(rigllama_last_error(), message ? message : "") == 0,
          "last_error is stable until the next call");
    CHECK(rigllama_engine_count_tokens(engine, &rb.request, &tokens) == RIGLLAMA_STATUS_OK, "a success");
    CHECK(rigllama_last_error() != NULL && strcmp(rigllama_last_error(), "") == 0,
          "last_error \"\" after success, got \"%s\"", rigllama_last_error());
    CHECK(tokens > 0, "count_tokens %u", tokens);
}

/* The request's string fields, read at their v0.1 offsets (count_tokens runs nothing). */
static void test_request_strings(rigllama_engine *engine) {
    request_box rb;
    uint32_t plain = 0, with_system = 0, as_messages = 0, with_history = 0;
    greedy(&rb, "What is the capital of France?", 0, 4);
    CHECK(rigllama_engine_count_tokens(engine, &rb.request, &plain) == RIGLLAMA_STATUS_OK, "count prompt");
    rb.request.system_prompt = "Answer in one word.";
    CHECK(rigllama_engine_count_tokens(engine, &rb.request, &with_system) == RIGLLAMA_STATUS_OK, "count + system");
    greedy(&rb, NULL, 0, 4);
    rb.request.messages_json = "[{\"role\":\"user\",\"content\":\"What is the capital of France?\"}]";
    CHECK(rigllama_engine_count_tokens(engine, &rb.request, &as_messages) == RIGLLAMA_STATUS_OK, "count messages");
    greedy(&rb, "What is the capital of France?", 0, 4);
    rb.request.messages_json =
        "[{\"role\":\"user\",\"content\":\"Hello\"},{\"role\":\"assistant\",\"content\":\"Hi there.\"}]";
    CHECK(rigllama_engine_count_tokens(engine, &rb.request, &with_history) == RIGLLAMA_STATUS_OK,
          "count history + prompt");
    CHECK(plain > 0 && with_system > plain, "system_prompt counted: %u vs %u", with_system, plain);
    CHECK(as_messages == plain, "one user turn as messages_json %u == as prompt %u", as_messages, plain);
    CHECK(with_history > plain, "history counted: %u vs %u", with_history, plain);
}

static void test_raw_prompt_and_stop(rigllama_engine *engine) {
    request_box rb;
    uint32_t raw_count = 0, chat_count = 0;
    greedy(&rb, RAW_PROMPT, 0, 24);
    CHECK(rigllama_engine_count_tokens(engine, &rb.request, &chat_count) == RIGLLAMA_STATUS_OK, "count chat");
    greedy(&rb, RAW_PROMPT, 1, 24);
    CHECK(rigllama_engine_count_tokens(engine, &rb.request, &raw_count) == RIGLLAMA_STATUS_OK, "count raw");
    CHECK(raw_count > 0 && raw_count < chat_count, "raw prompt %u tokens, chat-formatted %u", raw_count, chat_count);

    usage_box ub;
    new_usage(&ub);
    char *text = NULL;
    CHECK(rigllama_engine_reset(engine) == RIGLLAMA_STATUS_OK, "reset");
    rigllama_status status = rigllama_engine_complete(engine, &rb.request, &text, &ub.usage);
    CHECK(status == RIGLLAMA_STATUS_OK && text != NULL, "raw complete returned %d", (int)status);
    check_usage(&ub, "raw complete", 24);
    CHECK(ub.usage.prompt_tokens == raw_count, "raw prompt_tokens %u == count %u", ub.usage.prompt_tokens, raw_count);
    if (!text)
        return;
    printf("  raw continuation: %s%s\n", RAW_PROMPT, text);

    /* A stop string from the middle of that reply: up to 4 characters from its midpoint. */
    size_t full_len = strlen(text), at = full_len / 2, end;
    while (at < full_len && ((unsigned char)text[at] & 0xC0) == 0x80)
        at++;
    end = at;
    for (int chars = 0; chars < 4 && end < full_len; chars++) {
        end++;
        while (end < full_len && ((unsigned char)text[end] & 0xC0) == 0x80)
            end++;
    }
    char stop[32] = "";
    if (end > at && end - at < sizeof stop) {
        memcpy(stop, text + at, end - at);
        stop[end - at] = '\0';
    }
    CHECK(stop[0] != '\0', "a stop string from the reply [%s]", text);
    if (stop[0] != '\0') {
        size_t expected_len = (size_t)(strstr(text, stop) - text);
        const char *stops[1];
        stops[0] = stop;
        greedy(&rb, RAW_PROMPT, 1, 24);
        rb.request.stop = stops;
        rb.request.n_stop = 1;
        usage_box stopped_usage;
        new_usage(&stopped_usage);
        char *stopped = NULL;
        CHECK(rigllama_engine_reset(engine) == RIGLLAMA_STATUS_OK, "reset");
        status = rigllama_engine_complete(engine, &rb.request, &stopped, &stopped_usage.usage);
        CHECK(status == RIGLLAMA_STATUS_OK && stopped != NULL, "complete with a stop string returned %d", (int)status);
        CHECK(stopped && strlen(stopped) == expected_len && strncmp(stopped, text, expected_len) == 0,
              "stop [%s]: got [%s], expected the first %zu bytes of [%s]", stop, stopped ? stopped : "(null)",
              expected_len, text);
        CHECK(stopped && strstr(stopped, stop) == NULL, "the stop string is not emitted");
        CHECK(stopped_usage.usage.finish_reason == RIGLLAMA_FINISH_REASON_STOP, "finish_reason %d",
              (int)stopped_usage.usage.finish_reason);
        CHECK(stopped_usage.usage.completion_tokens <= ub.usage.completion_tokens, "completion_tokens %u vs %u",
              stopped_usage.usage.completion_tokens, ub.usage.completion_tokens);
        CHECK(stopped_usage.usage.struct_size == sizeof(rigllama_usage), "usage.struct_size changed");
        CHECK(canary_intact(stopped_usage.canary), "stop: wrote past the v0.1 rigllama_usage");
        CHECK(junk_intact(rb.junk), "complete wrote into its request");
        rigllama_string_free(stopped);
    }
    rigllama_string_free(text);
}

static void test_reload(rigllama_engine *engine, const reference *ref) {
    options_box ob;
    engine_options(&ob);
    progress.calls = 0;
    progress.out_of_range = 0;
    rigllama_status status = rigllama_engine_reload(engine, &ob.options);
    CHECK(status == RIGLLAMA_STATUS_OK, "reload the same model returned %d", (int)status);
    CHECK(strcmp(rigllama_last_error(), "") == 0, "last_error \"\" after reload");
    CHECK(progress.calls > 0 && progress.out_of_range == 0, "progress during reload: %d calls, %d out of range",
          progress.calls, progress.out_of_range);
    CHECK(junk_intact(ob.junk), "reload wrote into its options");

    /* Refused reloads leave the engine serving. */
    ob.options.struct_size = (uint32_t)sizeof(rigllama_engine_options) - 1;
    CHECK(rigllama_engine_reload(engine, &ob.options) == RIGLLAMA_STATUS_INVALID_ARGUMENT,
          "reload: options.struct_size below the v0.1 size");
    engine_options(&ob);
    ob.options.model_path = "/nonexistent/rigllama-v0.1-abi/model.gguf";
    CHECK(rigllama_engine_reload(engine, &ob.options) == RIGLLAMA_STATUS_MODEL_LOAD_FAILED, "reload a missing file");
    CHECK(rigllama_last_error()[0] != '\0', "a reason");

    request_box rb;
    greedy(&rb, CHAT_PROMPT, 0, MAX_TOKENS);
    char *text = NULL;
    CHECK(rigllama_engine_reset(engine) == RIGLLAMA_STATUS_OK, "reset");
    status = rigllama_engine_complete(engine, &rb.request, &text, NULL);
    CHECK(status == RIGLLAMA_STATUS_OK, "complete after reload returned %d", (int)status);
    CHECK(text && strcmp(text, ref->text) == 0, "same reply after reloading the same model:\n[%s]\n[%s]",
          text ? text : "(null)", ref->text);
    rigllama_string_free(text);
    test_describe(engine);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    model_path = argv[1];
    progress.magic = MAGIC;
    signal(SIGALRM, on_alarm);
    alarm(HANG_SECONDS);

    test_layout();
    test_version_and_status_text();
    test_init_functions();
    test_create_failures();

    options_box ob;
    engine_options(&ob);
    rigllama_engine *engine = NULL;
    rigllama_status status = rigllama_engine_create(&ob.options, &engine);
    CHECK(status == RIGLLAMA_STATUS_OK && engine != NULL, "create returned %d", (int)status);
    if (engine == NULL) {
        printf("v0_1_client: %d passed, %d failed\n", (int)passed, (int)failed);
        return 1;
    }
    CHECK(strcmp(rigllama_last_error(), "") == 0, "last_error \"\" after create");
    CHECK(progress.calls > 0 && progress.out_of_range == 0 && progress.last == 1.0f,
          "progress: %d calls, %d out of range, last %f", progress.calls, progress.out_of_range, progress.last);
    CHECK(junk_intact(ob.junk), "create wrote into its options");

    test_describe(engine);
    reference ref = test_complete(engine);
    test_stream(engine, &ref);
    test_job(engine, &ref);
    test_cancel_idle_engine(engine, &ref);
    test_null_arguments(engine);
    test_bad_requests(engine);
    test_last_error(engine);
    test_request_strings(engine);
    test_raw_prompt_and_stop(engine);
    test_reload(engine, &ref);
    rigllama_engine_destroy(engine);
    free(ref.text);

    printf("v0_1_client: %d passed, %d failed\n", (int)passed, (int)failed);
    return failed == 0 ? 0 : 1;
}
