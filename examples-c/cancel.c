/* Cancels a long generation from a second thread and reports how long the cancel took to
 * take effect.
 *
 *   usage: cancel MODEL.gguf */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "rigllama.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

typedef struct {
    rigllama_engine *engine;
    pthread_mutex_t lock;
    pthread_cond_t enough;
    int pieces;
    double cancelled_at;
} shared_state;

static int32_t count_piece(void *user_data, const char *piece, size_t piece_len) {
    shared_state *s = user_data;
    (void)piece;
    (void)piece_len;
    pthread_mutex_lock(&s->lock);
    if (++s->pieces == 20)
        pthread_cond_signal(&s->enough);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static void *canceller(void *arg) {
    shared_state *s = arg;
    pthread_mutex_lock(&s->lock);
    while (s->pieces < 20)
        pthread_cond_wait(&s->enough, &s->lock);
    pthread_mutex_unlock(&s->lock);
    s->cancelled_at = now_ms();
    rigllama_engine_cancel(s->engine); /* returns at once, from any thread */
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = argv[1];
    shared_state s = {NULL, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0.0};
    if (rigllama_engine_create(&options, &s.engine) != RIGLLAMA_STATUS_OK) {
        fprintf(stderr, "create failed: %s\n", rigllama_last_error());
        return 1;
    }

    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    request.prompt = "Write a very long story about the history of the sea.";
    request.raw_prompt = 1;
    request.max_tokens = RIGLLAMA_MAX_TOKENS_UNLIMITED;

    pthread_t thread;
    pthread_create(&thread, NULL, canceller, &s);
    rigllama_status status = rigllama_engine_stream(s.engine, &request, count_piece, &s, NULL);
    double returned_at = now_ms();
    pthread_join(thread, NULL);

    printf("stream returned %s after %d pieces; cancel took %.1f ms to take effect\n",
           rigllama_status_str(status), s.pieces, returned_at - s.cancelled_at);
    int ok = status == RIGLLAMA_STATUS_CANCELLED;

    /* The engine serves the next request normally. */
    char *text = NULL;
    request.max_tokens = 8;
    status = rigllama_engine_complete(s.engine, &request, &text, NULL);
    printf("next request: %s\n", rigllama_status_str(status));
    ok = ok && status == RIGLLAMA_STATUS_OK;
    rigllama_string_free(text);
    rigllama_engine_destroy(s.engine);
    return ok ? 0 : 1;
}
