/* What the C tests share: CHECK, a monotonic clock, time bounds that stretch under valgrind,
 * and an alarm() guard that turns a hang into a failure. Each test ends with
 * "NAME: N passed, N failed". */
#ifndef RIGLLAMA_TEST_CHECK_H
#define RIGLLAMA_TEST_CHECK_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "rigllama.h"

static int passed, failed;

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (cond) {                                                                            \
            passed++;                                                                          \
        } else {                                                                               \
            failed++;                                                                          \
            printf("FAIL %s:%d: %s — ", __FILE__, __LINE__, #cond);                           \
            printf(__VA_ARGS__);                                                               \
            printf(" (last error: %s)\n", rigllama_last_error());                             \
        }                                                                                      \
    } while (0)

/* Time bounds are for native speed; under valgrind (RIGLLAMA_UNDER_VALGRIND) they stretch. */
static inline double time_scale(void) {
    return getenv("RIGLLAMA_UNDER_VALGRIND") ? 100.0 : 1.0;
}

static inline double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "FAIL: the test hung (alarm)\n";
    if (write(1, msg, sizeof msg - 1) < 0) {
    }
    _exit(2);
}

/* Fails the whole test if it runs longer than `seconds` (stretched under valgrind). */
static void guard_against_hangs(unsigned seconds) {
    signal(SIGALRM, on_alarm);
    alarm((unsigned)(seconds * time_scale()));
}

/* A deterministic plain-text request: the prompt sent verbatim, greedy sampling. */
static inline rigllama_request greedy(const char *prompt, uint32_t max_tokens) {
    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    request.prompt = prompt;
    request.raw_prompt = 1;
    request.temperature = 0.0f;
    request.max_tokens = max_tokens;
    return request;
}

/* An engine on `model_path` with the default options; NULL (counted as a failure) if it does
 * not load. */
static inline rigllama_engine *default_engine(const char *model_path) {
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = model_path;
    rigllama_engine *engine = NULL;
    rigllama_status status = rigllama_engine_create(&options, &engine);
    CHECK(status == RIGLLAMA_STATUS_OK && engine, "create: status %d", status);
    return engine;
}

#endif
