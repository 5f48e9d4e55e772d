/* Snapshots ("save games"), embeddings and context_overflow through the C ABI, against the
 * real model.
 *
 *   usage: test_snapshot MODEL.gguf SECOND_MODEL.gguf
 *
 * (a) a ~1,500-token conversation is saved, the engine destroyed, and a new process (this
 *     program again, run with --child) loads the snapshot: its next turn is >= 95% cached,
 *     its prompt takes <= 0.2x the cold prompt time, and its greedy text is the one the
 *     original engine gave for that turn right after saving (saving puts the saved state
 *     back, so the original engine is in exactly the state the child loads) and after
 *     loading the snapshot back;
 * (b) every truncation and a few hundred byte flips of a small snapshot are refused with
 *     INVALID_ARGUMENT and a clear message, and the engine keeps serving;
 * (c) a snapshot is refused by an engine on another model, and by one whose n_ctx is smaller;
 * (d) NULL arguments;
 * (e) embeddings: sizing, norm, determinism, similarity, and the chat cache left untouched;
 * (f) context_overflow: SHIFT keeps a 40-turn chat in a 512-token context going, FAIL stops
 *     it with CONTEXT_OVERFLOW.
 * The last line is "test_snapshot: N passed, N failed". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static const char *model_path;
static const char *second_model_path;

static rigllama_engine *create_engine(const char *path, uint32_t n_ctx, int32_t context_overflow) {
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = path;
    if (n_ctx)
        options.n_ctx = n_ctx;
    options.context_overflow = context_overflow;
    rigllama_engine *engine = NULL;
    if (rigllama_engine_create(&options, &engine) != RIGLLAMA_STATUS_OK) {
        printf("FAIL: cannot create engine on %s: %s\n", path, rigllama_last_error());
        exit(1);
    }
    return engine;
}

/* ---- a growing string and a conversation built as messages_json ---------------------- */

typedef struct {
    char *data;
    size_t len, cap;
} buffer;

static void append(buffer *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->data = realloc(b->data, b->cap);
        if (!b->data) {
            perror("realloc");
            exit(1);
        }
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void append_str(buffer *b, const char *s) {
    append(b, s, strlen(s));
}

static void append_json_string(buffer *b, const char *s) {
    append(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            append(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            append(b, esc, 6);
        } else {
            append(b, (const char *)&c, 1);
        }
    }
    append(b, "\"", 1);
}

/* The turns so far, as the inside of a JSON array. */
typedef struct {
    buffer turns;
} conversation;

static void add_turn(conversation *c, const char *role, const char *content) {
    if (c->turns.len)
        append(&c->turns, ",", 1);
    append_str(&c->turns, "{\"role\":\"");
    append_str(&c->turns, role);
    append_str(&c->turns, "\",\"content\":");
    append_json_string(&c->turns, content);
    append(&c->turns, "}", 1);
}

/* messages_json for the turns so far, plus a last user turn when `next_user` is not NULL.
 * The caller frees it. */
static char *messages_json(const conversation *c, const char *next_user) {
    conversation copy = {{0}};
    append(&copy.turns, "", 0);
    if (c->turns.len)
        append(&copy.turns, c->turns.data, c->turns.len);
    if (next_user)
        add_turn(&copy, "user", next_user);
    buffer out = {0};
    append(&out, "[", 1);
    append(&out, copy.turns.data, copy.turns.len);
    append(&out, "]", 1);
    free(copy.turns.data);
    return out.data;
}

static void conversation_free(conversation *c) {
    free(c->turns.data);
    c->turns.data = NULL;
    c->turns.len = c->turns.cap = 0;
}

static rigllama_request chat_request(const char *messages, uint32_t max_tokens) {
    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    request.messages_json = messages;
    request.temperature = 0.0f;
    request.max_tokens = max_tokens;
    return request;
}

/* Runs one chat request; *out_text (may be NULL) receives a malloc'd copy of the reply. */
static rigllama_status run_chat(rigllama_engine *engine, const char *messages, uint32_t max_tokens,
                                char **out_text, rigllama_usage *usage) {
    rigllama_request request = chat_request(messages, max_tokens);
    rigllama_usage_init(usage, sizeof *usage);
    char *text = NULL;
    rigllama_status status = rigllama_engine_complete(engine, &request, &text, usage);
    if (out_text)
        *out_text = text ? strdup(text) : NULL;
    rigllama_string_free(text);
    return status;
}

static uint32_t count_tokens(rigllama_engine *engine, const char *messages) {
    rigllama_request request = chat_request(messages, 8);
    uint32_t n = 0;
    if (rigllama_engine_count_tokens(engine, &request, &n) != RIGLLAMA_STATUS_OK) {
        printf("FAIL: count_tokens: %s\n", rigllama_last_error());
        return 0;
    }
    return n;
}

/* ---- files shared with the child process --------------------------------------------- */

static int write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    int ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

/* The whole file, NUL-terminated, malloc'd; NULL on failure. */
static char *read_file(const char *path, size_t *out_len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    buffer b = {0};
    char chunk[65536];
    size_t n;
    append(&b, "", 0);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        append(&b, chunk, n);
    fclose(f);
    if (out_len)
        *out_len = b.len;
    return b.data;
}

static char *path_in(const char *dir, const char *name) {
    static char paths[4][4096];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, sizeof paths[0], "%s/%s", dir, name);
    return p;
}

/* ---- (a) a long conversation, saved, restored in a new process ------------------------- */

static const char *long_user_turns[] = {
    "I keep the lighthouse on the northern cape, and I want to write down how the work goes so "
    "that whoever comes after me does not have to learn it all the hard way. Every evening, an "
    "hour before sunset, I climb the one hundred and twelve steps with a can of paraffin, trim "
    "the wick, polish the brass and the great lens with a chamois cloth, and wind the clockwork "
    "that turns the light. The lens must never be touched with bare hands, because the oil from "
    "skin leaves marks that scatter the beam. In winter the glass frosts over from the inside, "
    "and then I keep a small stove burning in the lantern room all night.",
    "The supply boat comes on the first Monday of each month if the weather allows, which it "
    "often does not between November and February. It brings paraffin, flour, salt pork, tea, "
    "candles, letters and the newspapers, always three or four weeks old. I keep a ledger of "
    "every barrel and sack, because the board of trade audits the station twice a year and the "
    "inspector, a thin man named Hargreaves, counts everything twice. Last spring he found one "
    "barrel of paraffin missing from the ledger and wrote three pages about it.",
    "The weather log is the other duty. At six in the morning, at noon and at six in the "
    "evening I read the barometer, the wet and dry thermometers and the wind vane, and I write "
    "down the state of the sea, the cloud and the visibility. When fog comes in I start the "
    "foghorn, which is driven by a small engine in the shed by the cliff, and it must sound two "
    "blasts every minute until the fog lifts, even if that takes three days. The engine needs "
    "oil every four hours and the belts slip when they are wet.",
    "There is a garden behind the keeper's cottage, walled against the wind, where I grow "
    "potatoes, cabbages, onions and a few rows of beans. The soil is thin and full of stones, "
    "so every autumn I carry seaweed up from the cove in a basket and dig it in. The goats "
    "give milk from April to October; in the winter they shelter in the old boat house and I "
    "feed them hay that the supply boat brings in August. A pair of ravens nests on the cliff "
    "and steals anything shiny left outside.",
    "Ships pass at all hours. I note each one I can identify in the passage book: the name if "
    "I can read it through the telescope, the flag, the direction and the time. Most are "
    "colliers going south with coal and coming back light, riding high in the water, but in "
    "summer there are fishing fleets from the east coast and now and then a steamer bound for "
    "the Baltic. Twice in my years here a ship has gone onto the reef below the cape in a "
    "storm, and both times the lifeboat crew from the village came out and took the men off.",
    "The keeper's life is lonely, but not unhappy. I read a great deal in the long evenings, "
    "mostly history and the lives of explorers, and I write letters to my sister in the city "
    "that go out with the boat. In the summer the schoolteacher from the village brings the "
    "children up the cliff path to see the light, and I show them the lens and let them wind "
    "the clockwork. They always ask whether I am afraid of storms, and I tell them the truth: "
    "the tower has stood for ninety years and it is the safest place on the coast.",
};

static const char *long_assistant_turns[] = {
    "That is a careful routine. Keeping the lens clean and the clockwork wound is the heart "
    "of the job, and noting the stove in winter will save your successor a cold first night.",
    "A ledger that survives an inspector like Hargreaves is worth writing down in detail; "
    "your successor will thank you for explaining how you count the barrels.",
    "The weather log and the foghorn sound like the most demanding duties, especially the "
    "engine that needs oil every four hours through a long fog.",
    "The walled garden and the seaweed are the kind of local knowledge that takes years to "
    "learn. The ravens are worth a warning too.",
    "The passage book is a fine record. The colliers, the fishing fleets and the rescues on "
    "the reef give a picture of how busy that stretch of sea is.",
    "It sounds like a good life, if a solitary one, and the children's visits must be a "
    "highlight of the summer.",
};

static const char *next_question = "What should I write first in the notes for the next keeper?";
static const uint32_t next_turn_tokens = 16;

/* The conversation of about 1,500 tokens, ending with an assistant turn. */
static void build_long_conversation(rigllama_engine *engine, conversation *c, uint32_t *out_tokens) {
    size_t n = sizeof long_user_turns / sizeof long_user_turns[0];
    add_turn(c, "system", "You are a helpful assistant who answers briefly.");
    for (size_t i = 0;; i++) {
        char user[2048];
        snprintf(user, sizeof user, "Entry %zu. %s", i + 1, long_user_turns[i % n]);
        add_turn(c, "user", user);
        add_turn(c, "assistant", long_assistant_turns[i % n]);
        char *messages = messages_json(c, "Thank you. Anything else to add?");
        uint32_t tokens = count_tokens(engine, messages);
        free(messages);
        if (tokens >= 1450 || tokens == 0 || i > 40) {
            *out_tokens = tokens;
            return;
        }
    }
}

/* In this process: run the conversation's last turn, save, run the next turn on the same
 * engine (whose cache is then exactly the snapshot's), write everything for the child. */
static int test_long_conversation_parent(rigllama_engine *engine, const char *dir,
                                         uint8_t **out_snapshot, size_t *out_snapshot_len) {
    conversation c = {{0}};
    uint32_t conversation_tokens = 0;
    build_long_conversation(engine, &c, &conversation_tokens);
    CHECK(conversation_tokens >= 1400 && conversation_tokens <= 2000,
          "the conversation is %u tokens", conversation_tokens);

    /* The turn the game just played. */
    char *turn_messages = messages_json(&c, "Thank you. Anything else to add?");
    char *reply = NULL;
    rigllama_usage usage;
    rigllama_status status = run_chat(engine, turn_messages, 8, &reply, &usage);
    CHECK(status == RIGLLAMA_STATUS_OK, "the long turn: %s", rigllama_status_str(status));
    printf("long conversation: %u prompt tokens, reply \"%s\", prompt %.0f ms\n", usage.prompt_tokens,
           reply ? reply : "", usage.prompt_ms);
    add_turn(&c, "user", "Thank you. Anything else to add?");
    add_turn(&c, "assistant", reply ? reply : "");
    free(reply);
    free(turn_messages);

    /* The next turn: the same messages plus one more user turn. Saving with it keeps the
     * longest cached prefix of its prompt. */
    char *next = messages_json(&c, next_question);
    rigllama_request request = chat_request(next, next_turn_tokens);
    uint8_t *data = NULL;
    size_t len = 0;
    double start = now_ms();
    status = rigllama_engine_save_snapshot(engine, &request, &data, &len);
    double save_ms = now_ms() - start;
    CHECK(status == RIGLLAMA_STATUS_OK && data && len > 0, "save: %s", rigllama_status_str(status));
    CHECK(strcmp(rigllama_last_error(), "") == 0, "last error after success is \"%s\"", rigllama_last_error());
    if (status != RIGLLAMA_STATUS_OK) {
        free(next);
        conversation_free(&c);
        return 0;
    }
    CHECK(len > 8 && memcmp(data, "RIGLSNAP", 8) == 0, "the blob starts with its magic");

    char *text = NULL;
    status = run_chat(engine, next, next_turn_tokens, &text, &usage);
    CHECK(status == RIGLLAMA_STATUS_OK && text, "the next turn on the original engine: %s",
          rigllama_status_str(status));
    uint32_t snapshot_tokens = usage.cached_prompt_tokens;
    printf("snapshot: %zu bytes for %u tokens (%.2f MB per 1,000 tokens), saved in %.0f ms\n", len,
           snapshot_tokens, snapshot_tokens ? len / 1e6 * 1000.0 / snapshot_tokens : 0.0, save_ms);
    printf("next turn on the original engine: %u of %u prompt tokens cached, prompt %.1f ms: \"%s\"\n",
           usage.cached_prompt_tokens, usage.prompt_tokens, usage.prompt_ms, text ? text : "");
    CHECK(usage.cached_prompt_tokens >= 0.95 * usage.prompt_tokens,
          "the original engine reuses %u of %u", usage.cached_prompt_tokens, usage.prompt_tokens);

    /* Saving put the saved state back into the original engine, so its next turn above ran
     * from exactly the state a load gives: loading the snapshot back must give the same text
     * (and the child, below, too). */
    char *restored = NULL;
    status = rigllama_engine_load_snapshot(engine, data, len);
    CHECK(status == RIGLLAMA_STATUS_OK, "load the snapshot back into the original engine: %s",
          rigllama_status_str(status));
    rigllama_usage again;
    status = run_chat(engine, next, next_turn_tokens, &restored, &again);
    CHECK(status == RIGLLAMA_STATUS_OK && restored && again.cached_prompt_tokens == snapshot_tokens,
          "the next turn after loading it back: %s, %u cached", rigllama_status_str(status),
          again.cached_prompt_tokens);
    printf("next turn after loading the snapshot back into the original engine: %s text (\"%s\")\n",
           restored && text && strcmp(restored, text) == 0 ? "the same" : "a different", restored ? restored : "");
    CHECK(restored && text && strcmp(restored, text) == 0,
          "the original engine's next turn after saving equals its next turn after loading");

    int ok = write_file(path_in(dir, "snapshot.bin"), data, len) &&
             write_file(path_in(dir, "messages.json"), next, strlen(next)) &&
             write_file(path_in(dir, "expected.txt"), restored ? restored : "", restored ? strlen(restored) : 0);
    free(restored);
    CHECK(ok, "writing the files for the child process in %s: %s", dir, strerror(errno));
    free(text);
    free(next);
    conversation_free(&c);
    *out_snapshot = data;
    *out_snapshot_len = len;
    return ok;
}

/* The new process: a new engine loads the snapshot and plays the next turn. */
static int child_main(const char *dir) {
    guard_against_hangs(120);
    size_t snapshot_len = 0;
    char *snapshot = read_file(path_in(dir, "snapshot.bin"), &snapshot_len);
    char *next = read_file(path_in(dir, "messages.json"), NULL);
    char *expected = read_file(path_in(dir, "expected.txt"), NULL);
    CHECK(snapshot && next && expected, "child: reading the files in %s", dir);
    if (!snapshot || !next || !expected)
        return 1;

    rigllama_engine *engine = create_engine(model_path, 0, RIGLLAMA_CONTEXT_OVERFLOW_FAIL);
    double start = now_ms();
    rigllama_status status = rigllama_engine_load_snapshot(engine, (const uint8_t *)snapshot, snapshot_len);
    double restore_ms = now_ms() - start;
    CHECK(status == RIGLLAMA_STATUS_OK, "child: load: %s", rigllama_status_str(status));

    char *text = NULL;
    rigllama_usage warm;
    status = run_chat(engine, next, next_turn_tokens, &text, &warm);
    CHECK(status == RIGLLAMA_STATUS_OK, "child: the next turn: %s", rigllama_status_str(status));
    double ratio = warm.prompt_tokens ? (double)warm.cached_prompt_tokens / warm.prompt_tokens : 0.0;
    CHECK(ratio >= 0.95, "child: %u of %u prompt tokens cached", warm.cached_prompt_tokens,
          warm.prompt_tokens);
    CHECK(text && strcmp(text, expected) == 0,
          "child: greedy text \"%s\", the first process gave \"%s\" from the same snapshot", text ? text : "(null)",
          expected);

    /* The same request on a cold cache. */
    CHECK(rigllama_engine_reset(engine) == RIGLLAMA_STATUS_OK, "child: reset");
    rigllama_usage cold;
    status = run_chat(engine, next, next_turn_tokens, NULL, &cold);
    CHECK(status == RIGLLAMA_STATUS_OK && cold.cached_prompt_tokens == 0, "child: cold run: %s, %u cached",
          rigllama_status_str(status), cold.cached_prompt_tokens);
    CHECK(warm.prompt_ms <= 0.2 * cold.prompt_ms * time_scale(),
          "child: restored prompt %.1f ms vs cold %.1f ms", warm.prompt_ms, cold.prompt_ms);
    printf("new process: load_snapshot %.0f ms; next turn %u of %u prompt tokens cached (%.1f%%), prompt "
           "%.1f ms vs %.1f ms cold (%.1fx faster; load + prompt %.0f ms)\n",
           restore_ms, warm.cached_prompt_tokens, warm.prompt_tokens, 100.0 * ratio, warm.prompt_ms,
           cold.prompt_ms, warm.prompt_ms > 0 ? cold.prompt_ms / warm.prompt_ms : 0.0,
           restore_ms + warm.prompt_ms);
    printf("new process: greedy text \"%s\"\n", text ? text : "");
    free(text);
    rigllama_engine_destroy(engine);
    free(snapshot);
    free(next);
    free(expected);

    FILE *f = fopen(path_in(dir, "result.txt"), "w");
    if (f) {
        fprintf(f, "%d %d\n", passed, failed);
        fclose(f);
    }
    return failed == 0 ? 0 : 1;
}

static void test_restore_in_a_new_process(const char *self, const char *dir) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execl(self, self, "--child", model_path, dir, (char *)NULL);
        printf("FAIL: exec %s: %s\n", self, strerror(errno));
        fflush(stdout);
        _exit(127);
    }
    CHECK(pid > 0, "fork: %s", strerror(errno));
    if (pid <= 0)
        return;
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    CHECK(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0, "the child process exited with status %d",
          WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1);
    /* Its checks count as ours. */
    char *result = read_file(path_in(dir, "result.txt"), NULL);
    int child_passed = 0, child_failed = 0;
    CHECK(result && sscanf(result, "%d %d", &child_passed, &child_failed) == 2, "the child's results");
    passed += child_passed;
    failed += child_failed;
    free(result);
}

/* ---- (b) damaged snapshots ----------------------------------------------------------- */

static const char *small_conversation = "[{\"role\":\"user\",\"content\":\"Hello! Who are you?\"}]";

static int refused_clearly(rigllama_engine *engine, const uint8_t *data, size_t len, char *why, size_t why_len) {
    rigllama_status status = rigllama_engine_load_snapshot(engine, data, len);
    const char *message = rigllama_last_error();
    if (status == RIGLLAMA_STATUS_INVALID_ARGUMENT && strstr(message, "snapshot"))
        return 1;
    snprintf(why, why_len, "status %s, message \"%s\"", rigllama_status_str(status), message);
    return 0;
}

static void test_damaged_snapshots_are_refused(rigllama_engine *engine) {
    rigllama_usage usage;
    char *first_reply = NULL;
    CHECK(run_chat(engine, small_conversation, 8, &first_reply, &usage) == RIGLLAMA_STATUS_OK, "the small turn");
    uint32_t prompt_tokens = usage.prompt_tokens;
    printf("small turn: \"%s\"\n", first_reply ? first_reply : "");
    free(first_reply);
    rigllama_request request = chat_request(small_conversation, 8);
    uint8_t *data = NULL;
    size_t len = 0;
    CHECK(rigllama_engine_save_snapshot(engine, &request, &data, &len) == RIGLLAMA_STATUS_OK && data,
          "save the small snapshot");
    if (!data)
        return;
    printf("small snapshot: %zu bytes for %u tokens\n", len, prompt_tokens);

    uint8_t *copy = malloc(len);
    memcpy(copy, data, len);
    char why[512] = "";
    size_t bad = 0, tried = 0, first_bad = 0;
    /* Every length in the first 512 bytes and the last 64, a stride through the middle. */
    size_t stride = len > 576 + 1500 ? (len - 576) / 1500 : 1;
    double start = now_ms();
    for (size_t cut = 0; cut < len; cut++) {
        if (cut >= 512 && cut < len - 64 && (cut - 512) % stride != 0)
            continue;
        tried++;
        if (!refused_clearly(engine, copy, cut, why, sizeof why) && bad++ == 0)
            first_bad = cut;
    }
    CHECK(bad == 0, "%zu of %zu truncations not refused clearly; first at %zu bytes: %s", bad, tried,
          first_bad, why);
    printf("truncations: %zu lengths (every one below 512 and in the last 64, stride %zu between) "
           "refused in %.0f ms\n", tried, stride, now_ms() - start);

    size_t flips = 0;
    bad = 0;
    start = now_ms();
    for (size_t i = 0; i < 400; i++) {
        /* The first 100 bytes (magic, version, labels, fingerprint) one by one, then spread. */
        size_t at = i < 100 ? i : (i - 100) * (len - 1) / 299;
        if (at >= len)
            continue;
        uint8_t mask = (uint8_t)(i % 2 ? 0x01 : 0x80);
        copy[at] ^= mask;
        flips++;
        if (!refused_clearly(engine, copy, len, why, sizeof why) && bad++ == 0)
            first_bad = at;
        copy[at] ^= mask;
    }
    CHECK(bad == 0, "%zu of %zu byte flips not refused clearly; first at offset %zu: %s", bad, flips,
          first_bad, why);
    printf("byte flips: %zu positions refused in %.0f ms; last message: \"%s\"\n", flips, now_ms() - start,
           rigllama_last_error());
    CHECK(strlen(rigllama_last_error()) > 0, "a message after a refusal");

    /* The engine keeps serving. */
    char *text = NULL;
    rigllama_status status = run_chat(engine, small_conversation, 8, &text, &usage);
    CHECK(status == RIGLLAMA_STATUS_OK && text, "a request after the refusals: %s", rigllama_status_str(status));
    printf("after the refusals: a reply (\"%s\"), %u of %u prompt tokens cached (the cache was %s)\n",
           text ? text : "", usage.cached_prompt_tokens, usage.prompt_tokens,
           usage.cached_prompt_tokens ? "kept" : "emptied");
    free(text);
    rigllama_request raw = greedy("The capital of France is", 4);
    status = rigllama_engine_complete(engine, &raw, &text, NULL);
    CHECK(status == RIGLLAMA_STATUS_OK && text && *text, "a raw request after the refusals: %s",
          rigllama_status_str(status));
    rigllama_string_free(text);

    /* And the intact blob still loads. */
    CHECK(memcmp(copy, data, len) == 0, "the copy was restored byte for byte");
    CHECK(rigllama_engine_load_snapshot(engine, data, len) == RIGLLAMA_STATUS_OK, "the intact blob loads");
    status = run_chat(engine, small_conversation, 8, NULL, &usage);
    CHECK(status == RIGLLAMA_STATUS_OK && usage.cached_prompt_tokens + 1 >= prompt_tokens,
          "after loading, %u of %u cached", usage.cached_prompt_tokens, usage.prompt_tokens);
    free(copy);
    rigllama_bytes_free(data);
}

/* ---- (c) another model, a smaller context -------------------------------------------- */

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static void test_another_model_refuses(rigllama_engine *engine) {
    rigllama_usage usage;
    rigllama_request request = chat_request(small_conversation, 8);
    CHECK(run_chat(engine, small_conversation, 8, NULL, &usage) == RIGLLAMA_STATUS_OK, "the small turn");
    uint8_t *data = NULL;
    size_t len = 0;
    CHECK(rigllama_engine_save_snapshot(engine, &request, &data, &len) == RIGLLAMA_STATUS_OK, "save");
    if (!data)
        return;
    rigllama_engine *other = create_engine(second_model_path, 0, RIGLLAMA_CONTEXT_OVERFLOW_FAIL);
    rigllama_status status = rigllama_engine_load_snapshot(other, data, len);
    const char *message = rigllama_last_error();
    printf("into the second model: %s: %s\n", rigllama_status_str(status), message);
    CHECK(status == RIGLLAMA_STATUS_INVALID_ARGUMENT, "status %s", rigllama_status_str(status));
    CHECK(strstr(message, "snapshot is for model") != NULL, "message \"%s\"", message);
    CHECK(strstr(message, base_name(model_path)) && strstr(message, base_name(second_model_path)),
          "the message names both models: \"%s\"", message);
    char *text = NULL;
    status = run_chat(other, small_conversation, 4, &text, &usage);
    CHECK(status == RIGLLAMA_STATUS_OK && usage.cached_prompt_tokens == 0,
          "the other engine serves from an empty cache: %s, %u cached", rigllama_status_str(status),
          usage.cached_prompt_tokens);
    free(text);
    rigllama_engine_destroy(other);
    rigllama_bytes_free(data);
}

static void test_a_smaller_context_refuses(rigllama_engine *small_ctx, const uint8_t *data, size_t len) {
    rigllama_status status = rigllama_engine_load_snapshot(small_ctx, data, len);
    const char *message = rigllama_last_error();
    printf("a %zu-byte snapshot into an engine with n_ctx 512: %s: %s\n", len, rigllama_status_str(status),
           message);
    CHECK(status == RIGLLAMA_STATUS_INVALID_ARGUMENT, "status %s", rigllama_status_str(status));
    CHECK(strstr(message, "n_ctx") && strstr(message, "512"), "the message names n_ctx: \"%s\"", message);
}

/* ---- (d) NULL arguments -------------------------------------------------------------- */

static void test_null_arguments(rigllama_engine *engine) {
    rigllama_request request = chat_request(small_conversation, 8);
    uint8_t *data = (uint8_t *)&request; /* not NULL: must come back NULL */
    size_t len = 77;
    uint8_t byte = 0;
    float vector[4];
    size_t dims = 0;
    CHECK(rigllama_engine_save_snapshot(NULL, &request, &data, &len) == RIGLLAMA_STATUS_NULL_ARGUMENT &&
              data == NULL && len == 0,
          "save: NULL engine");
    CHECK(rigllama_engine_save_snapshot(engine, NULL, &data, &len) == RIGLLAMA_STATUS_NULL_ARGUMENT,
          "save: NULL request");
    CHECK(rigllama_engine_save_snapshot(engine, &request, NULL, &len) == RIGLLAMA_STATUS_NULL_ARGUMENT,
          "save: NULL out_data");
    data = (uint8_t *)&request;
    CHECK(rigllama_engine_save_snapshot(engine, &request, &data, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT &&
              data == NULL,
          "save: NULL out_len");
    CHECK(rigllama_engine_load_snapshot(NULL, &byte, 1) == RIGLLAMA_STATUS_NULL_ARGUMENT, "load: NULL engine");
    CHECK(rigllama_engine_load_snapshot(engine, NULL, 10) == RIGLLAMA_STATUS_NULL_ARGUMENT, "load: NULL data");
    CHECK(strstr(rigllama_last_error(), "data") != NULL, "the message names the argument: \"%s\"",
          rigllama_last_error());
    CHECK(rigllama_engine_embed(NULL, "text", vector, 4, &dims) == RIGLLAMA_STATUS_NULL_ARGUMENT,
          "embed: NULL engine");
    CHECK(rigllama_engine_embed(engine, NULL, vector, 4, &dims) == RIGLLAMA_STATUS_NULL_ARGUMENT,
          "embed: NULL text");
    CHECK(rigllama_engine_embed(engine, "text", vector, 4, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT,
          "embed: NULL out_dims");
    rigllama_bytes_free(NULL); /* a no-op */
    CHECK(1, "rigllama_bytes_free(NULL) returned");

    /* Nothing cached for this request yet (a fresh engine): INVALID_ARGUMENT, not a blob. */
    data = (uint8_t *)&request;
    rigllama_status status = rigllama_engine_save_snapshot(engine, &request, &data, &len);
    CHECK(status == RIGLLAMA_STATUS_INVALID_ARGUMENT && data == NULL && len == 0,
          "save with nothing cached: %s", rigllama_status_str(status));
}

/* ---- (e) embeddings ------------------------------------------------------------------ */

static float *embed(rigllama_engine *engine, const char *text, size_t dims) {
    float *v = calloc(dims, sizeof *v);
    size_t got = 0;
    rigllama_status status = rigllama_engine_embed(engine, text, v, dims, &got);
    CHECK(status == RIGLLAMA_STATUS_OK && got == dims, "embed \"%s\": %s, %zu dims", text,
          rigllama_status_str(status), got);
    return v;
}

static double dot(const float *a, const float *b, size_t n) {
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)a[i] * b[i];
    return sum;
}

static void test_embeddings(rigllama_engine *engine) {
    /* A chat turn first: embedding must not disturb its cache. */
    const char *turn1 = "[{\"role\":\"user\",\"content\":\"Name a colour of the sky.\"}]";
    char *reply = NULL;
    rigllama_usage first;
    CHECK(run_chat(engine, turn1, 8, &reply, &first) == RIGLLAMA_STATUS_OK, "chat turn 1");

    size_t dims = 0;
    CHECK(rigllama_engine_embed(engine, "sizing", NULL, 0, &dims) == RIGLLAMA_STATUS_OK && dims > 0,
          "embed with out_embedding NULL gives the dimension (%zu)", dims);
    if (dims == 0) {
        free(reply);
        return;
    }
    float small[1];
    size_t reported = 0;
    rigllama_status status = rigllama_engine_embed(engine, "too small", small, 1, &reported);
    CHECK(status == RIGLLAMA_STATUS_INVALID_ARGUMENT && reported == dims,
          "capacity 1: %s, out_dims %zu", rigllama_status_str(status), reported);
    CHECK(strstr(rigllama_last_error(), "capacity") != NULL, "message \"%s\"", rigllama_last_error());

    float *cat = embed(engine, "The cat sat on the mat.", dims);
    float *cat2 = embed(engine, "A cat was sitting on the mat.", dims);
    float *tax = embed(engine, "Quarterly tax filings are due in April.", dims);
    float *again = embed(engine, "The cat sat on the mat.", dims);
    /* |v| within 1 +- 1e-3, compared squared (no libm needed). */
    double norm2 = dot(cat, cat, dims);
    CHECK(norm2 >= (1 - 1e-3) * (1 - 1e-3) && norm2 <= (1 + 1e-3) * (1 + 1e-3), "squared norm %.6f", norm2);
    CHECK(memcmp(cat, again, dims * sizeof *cat) == 0, "the same text gives the same vector");
    double similar = dot(cat, cat2, dims), unrelated = dot(cat, tax, dims);
    CHECK(similar > unrelated, "cat·cat2 %.4f > cat·tax %.4f", similar, unrelated);
    printf("embeddings: %zu dims; \"The cat sat on the mat.\" · \"A cat was sitting on the mat.\" = %.4f, "
           "· \"Quarterly tax filings are due in April.\" = %.4f\n", dims, similar, unrelated);
    free(cat);
    free(cat2);
    free(tax);
    free(again);

    /* Turn 2 still finds turn 1 in the chat cache. */
    conversation c = {{0}};
    add_turn(&c, "user", "Name a colour of the sky.");
    add_turn(&c, "assistant", reply ? reply : "");
    char *turn2 = messages_json(&c, "And of grass?");
    rigllama_usage second;
    CHECK(run_chat(engine, turn2, 8, NULL, &second) == RIGLLAMA_STATUS_OK, "chat turn 2");
    CHECK(second.cached_prompt_tokens >= first.prompt_tokens,
          "turn 2 after embedding reuses %u tokens (turn 1's prompt was %u)", second.cached_prompt_tokens,
          first.prompt_tokens);
    free(turn2);
    free(reply);
    conversation_free(&c);
}

/* ---- (f) context_overflow ------------------------------------------------------------ */

static const char *questions[] = {
    "Tell me one fact about the moon.",
    "What is the tallest mountain on Earth?",
    "Name a famous painter from Spain.",
    "Why is the sea salty?",
    "What do bees make?",
    "How many legs does a spider have?",
    "What is the capital of Japan?",
    "Which planet has rings?",
    "What language is spoken in Brazil?",
    "What is water made of?",
};

enum { OVERFLOW_CTX = 512, OVERFLOW_TURNS = 40, OVERFLOW_REPLY = 24 };

static void test_context_overflow_invalid_value(void) {
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = model_path;
    CHECK(options.context_overflow == RIGLLAMA_CONTEXT_OVERFLOW_FAIL, "init gives FAIL");
    options.context_overflow = 7;
    rigllama_engine *engine = (rigllama_engine *)&options;
    rigllama_status status = rigllama_engine_create(&options, &engine);
    CHECK(status == RIGLLAMA_STATUS_INVALID_ARGUMENT && engine == NULL, "context_overflow 7: %s",
          rigllama_status_str(status));
    CHECK(strstr(rigllama_last_error(), "context_overflow") != NULL, "message \"%s\"", rigllama_last_error());
}

static void test_shift_keeps_going(rigllama_engine *engine) {
    conversation c = {{0}};
    add_turn(&c, "system", "You are a quiz master. Answer in one short sentence.");
    int failures = 0, over = 0, over_without_drop = 0, under_with_drop = 0, too_long = 0;
    uint32_t total_dropped = 0, max_full = 0;
    double start = now_ms();
    for (int turn = 0; turn < OVERFLOW_TURNS; turn++) {
        const char *question = questions[turn % (sizeof questions / sizeof questions[0])];
        char *messages = messages_json(&c, question);
        uint32_t full = count_tokens(engine, messages);
        char *reply = NULL;
        rigllama_usage usage;
        rigllama_status status = run_chat(engine, messages, OVERFLOW_REPLY, &reply, &usage);
        if (status != RIGLLAMA_STATUS_OK) {
            if (failures++ == 0)
                printf("FAIL: SHIFT turn %d (%u tokens): %s: %s\n", turn + 1, full, rigllama_status_str(status),
                       rigllama_last_error());
        } else {
            if (full > OVERFLOW_CTX) {
                over++;
                if (usage.dropped_tokens == 0)
                    over_without_drop++;
            }
            if (full + OVERFLOW_REPLY <= OVERFLOW_CTX && usage.dropped_tokens != 0)
                under_with_drop++;
            if (usage.prompt_tokens > OVERFLOW_CTX)
                too_long++;
            total_dropped += usage.dropped_tokens;
        }
        if (full > max_full)
            max_full = full;
        if (turn % 10 == 9 || turn == 0)
            printf("SHIFT turn %d: conversation %u tokens, prompt %u (%u cached), dropped %u, prompt %.0f ms\n",
                   turn + 1, full, usage.prompt_tokens, usage.cached_prompt_tokens, usage.dropped_tokens,
                   usage.prompt_ms);
        add_turn(&c, "user", question);
        add_turn(&c, "assistant", reply ? reply : "");
        free(reply);
        free(messages);
    }
    CHECK(failures == 0, "%d of %d SHIFT turns failed", failures, OVERFLOW_TURNS);
    CHECK(over >= 10, "%d turns exceeded n_ctx %d (the conversation reached %u tokens)", over, OVERFLOW_CTX,
          max_full);
    CHECK(over_without_drop == 0, "%d turns over n_ctx reported dropped_tokens 0", over_without_drop);
    CHECK(under_with_drop == 0, "%d turns that fit reported dropped tokens", under_with_drop);
    CHECK(too_long == 0, "%d prompts longer than n_ctx", too_long);
    printf("SHIFT: %d turns in n_ctx %d, conversation reached %u tokens, %u tokens dropped in all, %.1f s\n",
           OVERFLOW_TURNS, OVERFLOW_CTX, max_full, total_dropped, (now_ms() - start) / 1e3);
    conversation_free(&c);
}

static void test_fail_stops(rigllama_engine *engine) {
    conversation c = {{0}};
    add_turn(&c, "system", "You are a quiz master. Answer in one short sentence.");
    rigllama_status status = RIGLLAMA_STATUS_OK;
    int turn = 0, dropped_reported = 0;
    uint32_t full = 0;
    for (; turn < OVERFLOW_TURNS; turn++) {
        const char *question = questions[turn % (sizeof questions / sizeof questions[0])];
        char *messages = messages_json(&c, question);
        full = count_tokens(engine, messages);
        char *reply = NULL;
        rigllama_usage usage;
        status = run_chat(engine, messages, OVERFLOW_REPLY, &reply, &usage);
        free(messages);
        if (status != RIGLLAMA_STATUS_OK) {
            free(reply);
            break;
        }
        if (usage.dropped_tokens)
            dropped_reported++;
        add_turn(&c, "user", question);
        add_turn(&c, "assistant", reply ? reply : "");
        free(reply);
    }
    printf("FAIL: turn %d (%u tokens): %s: %s\n", turn + 1, full, rigllama_status_str(status),
           rigllama_last_error());
    CHECK(status == RIGLLAMA_STATUS_CONTEXT_OVERFLOW, "FAIL ends with %s at turn %d", rigllama_status_str(status),
          turn + 1);
    CHECK(full > OVERFLOW_CTX, "it failed only once the conversation (%u tokens) exceeded n_ctx", full);
    CHECK(strstr(rigllama_last_error(), "n_ctx") != NULL, "message \"%s\"", rigllama_last_error());
    CHECK(dropped_reported == 0, "FAIL reported dropped tokens %d times", dropped_reported);
    conversation_free(&c);
}

/* ---- main ---------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    if (argc >= 4 && strcmp(argv[1], "--child") == 0) {
        model_path = argv[2];
        int status = child_main(argv[3]);
        printf("test_snapshot (new process): %d passed, %d failed\n", passed, failed);
        return status;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf SECOND_MODEL.gguf\n", argv[0]);
        return 2;
    }
    model_path = argv[1];
    second_model_path = argv[2];
    guard_against_hangs(300);
    setvbuf(stdout, NULL, _IOLBF, 0);

    char dir[] = "/tmp/rigllama-test-snapshot-XXXXXX";
    if (!mkdtemp(dir)) {
        printf("FAIL: mkdtemp: %s\n", strerror(errno));
        return 1;
    }

    rigllama_engine *engine = create_engine(model_path, 0, RIGLLAMA_CONTEXT_OVERFLOW_FAIL);
    test_null_arguments(engine);
    test_embeddings(engine);
    test_damaged_snapshots_are_refused(engine);
    test_another_model_refuses(engine);
    uint8_t *big = NULL;
    size_t big_len = 0;
    int saved = test_long_conversation_parent(engine, dir, &big, &big_len);
    rigllama_engine_destroy(engine);
    if (saved)
        test_restore_in_a_new_process(argv[0], dir);

    test_context_overflow_invalid_value();
    engine = create_engine(model_path, OVERFLOW_CTX, RIGLLAMA_CONTEXT_OVERFLOW_SHIFT);
    if (big)
        test_a_smaller_context_refuses(engine, big, big_len);
    rigllama_bytes_free(big);
    test_shift_keeps_going(engine);
    rigllama_engine_destroy(engine);
    engine = create_engine(model_path, OVERFLOW_CTX, RIGLLAMA_CONTEXT_OVERFLOW_FAIL);
    test_fail_stops(engine);
    rigllama_engine_destroy(engine);

    const char *files[] = {"snapshot.bin", "messages.json", "expected.txt", "result.txt"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(path_in(dir, files[i]));
    rmdir(dir);

    printf("test_snapshot: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
