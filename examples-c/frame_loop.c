/* A game loop at 60 frames per second that never blocks on the model: it submits a request,
 * polls the job once per frame with timeout 0, prints text as it arrives, and reports the
 * worst time any poll took (it must stay far below a 16.7 ms frame).
 *
 *   usage: frame_loop MODEL.gguf */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <time.h>

#include "rigllama.h"

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void sleep_until(double deadline_us) {
    double left = deadline_us - now_us();
    if (left > 0) {
        struct timespec ts = {(time_t)(left / 1e6), (long)((left - (time_t)(left / 1e6) * 1e6) * 1e3)};
        nanosleep(&ts, NULL);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = argv[1];
    /* The engine's threads yield to this loop's: frames keep their time (README, "Living
     * inside a host's process"). */
    options.thread_priority = RIGLLAMA_THREAD_PRIORITY_LOW;
    rigllama_engine *engine = NULL;
    if (rigllama_engine_create(&options, &engine) != RIGLLAMA_STATUS_OK) {
        fprintf(stderr, "create failed: %s\n", rigllama_last_error());
        return 1;
    }

    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    request.prompt = "The old lighthouse keeper looked out at the storm and";
    request.raw_prompt = 1;
    request.max_tokens = 64;
    request.temperature = 0.0f;

    rigllama_job *job = NULL;
    if (rigllama_engine_submit(engine, &request, &job) != RIGLLAMA_STATUS_OK) {
        fprintf(stderr, "submit failed: %s\n", rigllama_last_error());
        rigllama_engine_destroy(engine);
        return 1;
    }

    rigllama_event event;
    rigllama_event_init(&event, sizeof event);
    const double frame_us = 1e6 / 60;
    double next_frame = now_us();
    double worst_poll_us = 0, total_poll_us = 0;
    int frames = 0, text_events = 0, finished = 0, ok = 0;
    printf("%s", request.prompt);
    while (!finished && frames < 60 * 60) {
        /* ... the game's own update and render would run here ... */
        double before = now_us();
        rigllama_status status = rigllama_job_poll(job, 0, &event);
        double took = now_us() - before;
        if (took > worst_poll_us)
            worst_poll_us = took;
        total_poll_us += took;
        frames++;
        if (status != RIGLLAMA_STATUS_OK) {
            fprintf(stderr, "\npoll failed: %s\n", rigllama_last_error());
            break;
        }
        switch (event.kind) {
        case RIGLLAMA_EVENT_KIND_TEXT:
            fwrite(event.text, 1, event.text_len, stdout);
            fflush(stdout);
            text_events++;
            break;
        case RIGLLAMA_EVENT_KIND_DONE:
            finished = ok = 1;
            break;
        case RIGLLAMA_EVENT_KIND_ERROR:
            fprintf(stderr, "\njob failed: %s\n", event.message);
            finished = 1;
            break;
        default: /* NONE: nothing new this frame */
            break;
        }
        next_frame += frame_us;
        sleep_until(next_frame);
    }
    rigllama_usage usage;
    rigllama_usage_init(&usage, sizeof usage);
    if (ok && rigllama_job_usage(job, &usage) == RIGLLAMA_STATUS_OK)
        printf("\n[%u tokens, %d text events over %d frames]\n", usage.completion_tokens, text_events, frames);
    printf("worst poll: %.1f us, mean poll: %.2f us (a frame is %.0f us)\n", worst_poll_us,
           total_poll_us / (frames ? frames : 1), frame_us);
    rigllama_job_free(job);
    rigllama_engine_destroy(engine);
    return ok ? 0 : 1;
}
