/* Structured output, tools and templates through the C ABI (API.md, v0.2 "Structured
 * output, tools and reasoning"): grammar and json_schema constrain the reply, bad input is
 * refused before decoding and the engine serves on, tool_choice REQUIRED yields a call
 * (rigllama_engine_chat, TOOL_CALL job events, finish reason TOOL_CALLS), an agent loop with
 * a tool result completes, stream callbacks get content only, apply_template shows the
 * prompt.
 *
 *   usage: test_structured MODEL.gguf */
#include <string.h>

#include "check.h"

static const char *TOOLS =
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather in a city\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\",\"maxLength\":20},"
    "\"unit\":{\"enum\":[\"celsius\",\"fahrenheit\"]}},\"required\":[\"city\",\"unit\"]}}}]";

static rigllama_request chat_request(const char *prompt) {
    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    request.prompt = prompt;
    request.temperature = 0.0f;
    request.max_tokens = 120;
    return request;
}

static int content_pieces;
static int32_t count_piece(void *user_data, const char *piece, size_t len) {
    (void)user_data;
    (void)piece;
    if (len > 0) {
        content_pieces++;
    }
    return 0;
}

static void refused(rigllama_engine *engine, rigllama_request *request, const char *why,
                    const char *message_part) {
    char *text = NULL;
    rigllama_status status = rigllama_engine_complete(engine, request, &text, NULL);
    CHECK(status == RIGLLAMA_STATUS_INVALID_ARGUMENT, "%s: status %d", why, status);
    CHECK(text == NULL, "%s: out_text set on failure", why);
    CHECK(strstr(rigllama_last_error(), message_part) != NULL, "%s: message \"%s\" lacks \"%s\"",
          why, rigllama_last_error(), message_part);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    guard_against_hangs(300);
    rigllama_engine *engine = default_engine(argv[1]);
    if (!engine) {
        return 1;
    }

    /* init: the new fields default to NULL / AUTO. */
    rigllama_request request = chat_request("hi");
    CHECK(request.grammar == NULL && request.json_schema == NULL && request.tools_json == NULL,
          "pointers default to NULL");
    CHECK(request.tool_choice == RIGLLAMA_TOOL_CHOICE_AUTO && request.reasoning == RIGLLAMA_REASONING_AUTO,
          "enums default to AUTO");

    /* A grammar decides the reply exactly. */
    request = chat_request("Is the sky blue?");
    request.grammar = "root ::= (\"yes\" | \"no\") \".\"";
    char *text = NULL;
    rigllama_usage usage;
    rigllama_usage_init(&usage, sizeof usage);
    CHECK(rigllama_engine_complete(engine, &request, &text, &usage) == RIGLLAMA_STATUS_OK, "grammar");
    CHECK(text && (strcmp(text, "yes.") == 0 || strcmp(text, "no.") == 0), "grammar reply \"%s\"",
          text ? text : "(null)");
    CHECK(usage.finish_reason == RIGLLAMA_FINISH_REASON_STOP, "grammar finish %d", usage.finish_reason);
    rigllama_string_free(text);

    /* Raw prompts take a grammar too (here, from a schema). */
    request = greedy("The number of legs of a spider is", 8);
    request.json_schema = "{\"type\":\"integer\",\"minimum\":1,\"maximum\":99}";
    CHECK(rigllama_engine_complete(engine, &request, &text, NULL) == RIGLLAMA_STATUS_OK, "raw + schema");
    CHECK(text && atoi(text) >= 1 && atoi(text) <= 99 && strspn(text, "0123456789") == strlen(text),
          "raw + schema reply \"%s\"", text ? text : "(null)");
    rigllama_string_free(text);

    /* json_schema: the content is one JSON object with the required keys (tests/structured.rs
     * validates many schemas with a real validator). */
    request = chat_request("Describe a cat.");
    request.temperature = 0.7f;
    request.seed = 3;
    request.json_schema = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":12},"
                          "\"legs\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":8}},"
                          "\"required\":[\"name\",\"legs\"],\"additionalProperties\":false}";
    char *message = NULL;
    CHECK(rigllama_engine_chat(engine, &request, &message, &usage) == RIGLLAMA_STATUS_OK, "json_schema chat");
    CHECK(message && strstr(message, "\"role\":\"assistant\"") && strstr(message, "\\\"legs\\\"") &&
              strstr(message, "\\\"name\\\""),
          "json_schema message %s", message ? message : "(null)");
    rigllama_string_free(message);

    /* Refused before decoding, naming the problem; the engine answers the next request. */
    request = chat_request("x");
    request.grammar = "root ::= undefined-rule";
    refused(engine, &request, "undefined rule", "undefined-rule");
    request = chat_request("x");
    request.grammar = "root ::= \"unterminated";
    refused(engine, &request, "malformed GBNF", "GBNF");
    request = chat_request("x");
    request.json_schema = "{\"type\": ";
    refused(engine, &request, "non-JSON schema", "json_schema");
    request = chat_request("x");
    request.json_schema = "{\"type\":\"object\"}";
    request.grammar = "root ::= \"a\"";
    refused(engine, &request, "grammar and schema", "both");
    request = chat_request("x");
    request.tools_json = "[{\"type\":\"function\"}]";
    refused(engine, &request, "bad tools_json", "tools_json[0].function");
    request = chat_request("x");
    request.tools_json = "not json";
    refused(engine, &request, "non-JSON tools", "tools_json");
    request = chat_request("x");
    request.tools_json = TOOLS;
    request.tool_choice = 7;
    refused(engine, &request, "unknown tool_choice", "tool_choice 7");
    request = chat_request("x");
    request.reasoning = -1;
    refused(engine, &request, "unknown reasoning", "reasoning -1");
    request = chat_request("x");
    request.tool_choice = RIGLLAMA_TOOL_CHOICE_REQUIRED;
    refused(engine, &request, "REQUIRED without tools", "REQUIRED");
    request = chat_request("x");
    request.messages_json = "[{\"role\":\"tool\",\"content\":\"18 C\"}]";
    request.prompt = NULL;
    refused(engine, &request, "tool turn without id", "tool_call_id");
    /* Left recursion parses but llama.cpp refuses it: caught when the request starts. */
    request = chat_request("x");
    request.grammar = "root ::= root \"a\" | \"a\"";
    refused(engine, &request, "left recursion", "grammar");
    request = chat_request("Say hello.");
    request.max_tokens = 4;
    CHECK(rigllama_engine_complete(engine, &request, &text, NULL) == RIGLLAMA_STATUS_OK,
          "the engine serves after refusals");
    rigllama_string_free(text);

    /* tool_choice REQUIRED: a valid call, finish TOOL_CALLS, no content. */
    request = chat_request("What is the weather in Paris?");
    request.tools_json = TOOLS;
    request.tool_choice = RIGLLAMA_TOOL_CHOICE_REQUIRED;
    CHECK(rigllama_engine_chat(engine, &request, &message, &usage) == RIGLLAMA_STATUS_OK, "tool chat");
    CHECK(usage.finish_reason == RIGLLAMA_FINISH_REASON_TOOL_CALLS, "finish %d", usage.finish_reason);
    CHECK(message && strstr(message, "\"tool_calls\":[{\"id\":\"call_") &&
              strstr(message, "\"name\":\"get_weather\"") && strstr(message, "\"content\":null"),
          "tool message %s", message ? message : "(null)");
    rigllama_string_free(message);

    /* The same through a job: TOOL_CALL events parse, no TEXT, then DONE. */
    rigllama_job *job = NULL;
    CHECK(rigllama_engine_submit(engine, &request, &job) == RIGLLAMA_STATUS_OK, "submit");
    int tool_events = 0, text_events = 0, done = 0;
    rigllama_event event;
    rigllama_event_init(&event, sizeof event);
    while (job && !done) {
        CHECK(rigllama_job_poll(job, 1000, &event) == RIGLLAMA_STATUS_OK, "poll");
        if (event.kind == RIGLLAMA_EVENT_KIND_TOOL_CALL) {
            tool_events++;
            CHECK(strncmp(event.text, "{\"id\":\"call_", 12) == 0 &&
                      strstr(event.text, "\"name\":\"get_weather\",\"arguments\":{\"city\":"),
                  "TOOL_CALL text %s", event.text);
            CHECK(event.text_len == strlen(event.text), "text_len");
        } else if (event.kind == RIGLLAMA_EVENT_KIND_TEXT) {
            text_events++;
        } else if (event.kind == RIGLLAMA_EVENT_KIND_DONE || event.kind == RIGLLAMA_EVENT_KIND_ERROR) {
            done = 1;
            CHECK(event.kind == RIGLLAMA_EVENT_KIND_DONE, "job ended with %d: %s", event.status, event.message);
        }
    }
    CHECK(tool_events >= 1 && text_events == 0, "%d tool events, %d text events", tool_events, text_events);
    CHECK(rigllama_job_usage(job, &usage) == RIGLLAMA_STATUS_OK &&
              usage.finish_reason == RIGLLAMA_FINISH_REASON_TOOL_CALLS,
          "job usage finish %d", usage.finish_reason);
    rigllama_job_free(job);

    /* stream's callback receives content only: a reply that is all tool call sends none. */
    content_pieces = 0;
    CHECK(rigllama_engine_stream(engine, &request, count_piece, NULL, &usage) == RIGLLAMA_STATUS_OK, "stream");
    CHECK(content_pieces == 0 && usage.finish_reason == RIGLLAMA_FINISH_REASON_TOOL_CALLS,
          "%d content pieces, finish %d", content_pieces, usage.finish_reason);

    /* The agent loop's next turn: the call and its result in messages_json. */
    request = chat_request(NULL);
    request.messages_json =
        "[{\"role\":\"user\",\"content\":\"What is the weather in Paris?\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\","
        "\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\",\\\"unit\\\":\\\"celsius\\\"}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"18 C and sunny\"}]";
    request.tools_json = TOOLS;
    CHECK(rigllama_engine_chat(engine, &request, &message, &usage) == RIGLLAMA_STATUS_OK, "agent turn 2");
    CHECK(message && strstr(message, "\"role\":\"assistant\""), "turn 2 message %s", message ? message : "(null)");
    CHECK(usage.finish_reason == RIGLLAMA_FINISH_REASON_STOP ||
              usage.finish_reason == RIGLLAMA_FINISH_REASON_TOOL_CALLS,
          "turn 2 finish %d", usage.finish_reason);
    rigllama_string_free(message);

    /* apply_template: the prompt as the model sees it, tool result included. */
    char *prompt = NULL;
    CHECK(rigllama_engine_apply_template(engine, &request, &prompt) == RIGLLAMA_STATUS_OK, "apply_template");
    CHECK(prompt && strstr(prompt, "get_weather") && strstr(prompt, "18 C and sunny"),
          "template text %s", prompt ? prompt : "(null)");
    uint32_t counted = 0;
    CHECK(rigllama_engine_count_tokens(engine, &request, &counted) == RIGLLAMA_STATUS_OK && counted > 20,
          "count_tokens %u", counted);
    rigllama_string_free(prompt);
    CHECK(rigllama_engine_apply_template(engine, &request, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT,
          "NULL out_prompt");
    CHECK(rigllama_engine_chat(engine, &request, NULL, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT,
          "NULL out_message_json");

    rigllama_engine_destroy(engine);
    (void)now_ms; /* check.h's clock: not needed here */
    printf("test_structured: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
