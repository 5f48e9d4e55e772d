// Streams a reply through rigllama.hpp, then cancels two more requests: a stream from a second
// thread (it throws rigllama::Error with CANCELLED) and a job (it ends with ERROR/CANCELLED);
// then saves a conversation's snapshot, loads it into a second engine, and continues there;
// then runs two jobs at once with different priorities on an n_seq 2 engine, paused and
// resumed midway; then has a grammar decide a chat reply and shows the prompt a tool list
// makes; then checks the log-probabilities a job reports; then has prompt-lookup speculation
// (draft_max) guess a reply that repeats its prompt; then turns text into token ids and back
// (tokenize, detokenize) and sends ids as a request's prompt_tokens; then fills in the middle of
// a text (Request::suffix) on $RIGLLAMA_FIM_MODEL (scripts/make-fim-model: this model with FIM
// tokens), which this model refuses, and has rerank refuse this model and score documents on
// $RIGLLAMA_RERANK_MODEL; then has adaptive-p (Request::adaptive_target) change a seeded reply
// and repeat it, and steers the model with a control vector from $RIGLLAMA_CONTROL_VECTOR_DIR
// (scripts/make-control-vector: strength 0 is the base model, 1 changes the text, clearing
// restores it, one for another width is refused) (a part whose variable is unset prints "skip"),
// and checks Request::reasoning_budget: unlimited by default, -2 refused, and 8 on this model
// (whose template has no thinking block) the same reply as without, and per-request LoRA
// (Request::lora) with the adapter in $RIGLLAMA_LORA_DIR (scripts/make-lora-adapter): on for one
// request it is the text the adapter gives engine-wide, no_lora() the base model's, an unknown
// id or a scale of 1000 refused, and devices: list_devices() has the CPU, estimate() plans
// within 10% of what the engine allocates (and refuses fit), devices "NoSuchGPU0" is refused
// naming it, "CPU" puts the model on the CPU with no GPU fallback; set_backend_dir() is refused
// in this build (no dynamic-backends) and describe's cpu_backend is "built-in". Also checks the
// engine options' defaults for state checkpoints (32, 512 MiB), mmproj_path (NULL) and thread_priority
// (NORMAL) and what describe reports of checkpoints and thread priority, that an unknown
// thread_priority is refused, that this library (built without the mtmd cargo feature) refuses
// a projector, and that a text request counts no image tokens. Exits non-zero on any failure.
//
//   usage: rigllama-cpp MODEL.gguf
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <iostream>
#include <string>
#include <stdexcept>
#include <thread>
#include <vector>

#include "rigllama.hpp"

// The wrapper hands the C structs to the library as they are.
static_assert(sizeof(rigllama::Usage) == sizeof(rigllama_usage), "Usage adds no members");
static_assert(std::is_standard_layout_v<rigllama::Usage>, "Usage is passed as rigllama_usage*");
static_assert(sizeof(rigllama::EngineOptions) == sizeof(rigllama_engine_options), "EngineOptions adds no members");
// v0.2 fields are appended: the v0.1 prefix keeps its layout (x86-64 numbers).
static_assert(sizeof(void *) != 8 || (sizeof(rigllama_usage) == 56 && offsetof(rigllama_usage, dropped_tokens) == 40 &&
                                      offsetof(rigllama_usage, drafted_tokens) == 44 &&
                                      offsetof(rigllama_usage, accepted_tokens) == 48 &&
                                      offsetof(rigllama_usage, image_tokens) == 52),
              "rigllama_usage layout");
// i686 too: the doubles sit at multiples of 8, and image_tokens makes the size 56 there as well.
static_assert(sizeof(void *) != 4 || (sizeof(rigllama_usage) == 56 && offsetof(rigllama_usage, image_tokens) == 52),
              "rigllama_usage layout (i686)");
static_assert(sizeof(void *) != 8 ||
                  (sizeof(rigllama_engine_options) == 176 && offsetof(rigllama_engine_options, context_overflow) == 56 &&
                   offsetof(rigllama_engine_options, n_seq) == 60 && offsetof(rigllama_engine_options, type_k) == 64 &&
                   offsetof(rigllama_engine_options, fit_min_ctx) == 80 &&
                   offsetof(rigllama_engine_options, fit_margins_mib) == 88 &&
                   offsetof(rigllama_engine_options, n_fit_margins_mib) == 96 &&
                   offsetof(rigllama_engine_options, max_checkpoint_bytes) == 104 &&
                   offsetof(rigllama_engine_options, max_checkpoints) == 112 &&
                   offsetof(rigllama_engine_options, mmproj_path) == 120 &&
                   offsetof(rigllama_engine_options, thread_priority) == 128 &&
                   offsetof(rigllama_engine_options, rpc_servers) == 136 &&
                   offsetof(rigllama_engine_options, model_offset) == 144 &&
                   offsetof(rigllama_engine_options, model_size) == 152 &&
                   offsetof(rigllama_engine_options, no_repack) == 160 &&
                   offsetof(rigllama_engine_options, devices) == 168),
              "rigllama_engine_options layout");
// i686 (uint64_t is 4-aligned in structs there), as tests/c/test_contract checks it.
static_assert(sizeof(void *) != 4 ||
                  (sizeof(rigllama_engine_options) == 120 && offsetof(rigllama_engine_options, devices) == 116 &&
                   offsetof(rigllama_engine_options, rpc_servers) == 92 &&
                   offsetof(rigllama_engine_options, model_offset) == 96 &&
                   offsetof(rigllama_engine_options, no_repack) == 112 &&
                   offsetof(rigllama_engine_options, max_checkpoint_bytes) == 72 &&
                   offsetof(rigllama_engine_options, max_checkpoints) == 80 &&
                   offsetof(rigllama_engine_options, mmproj_path) == 84 &&
                   offsetof(rigllama_engine_options, thread_priority) == 88),
              "rigllama_engine_options layout (i686)");
static_assert(sizeof(void *) != 8 || (sizeof(rigllama_request) == 280 && offsetof(rigllama_request, n_stop) == 72 &&
                                      offsetof(rigllama_request, priority) == 80 &&
                                      offsetof(rigllama_request, grammar) == 88 &&
                                      offsetof(rigllama_request, json_schema) == 96 &&
                                      offsetof(rigllama_request, tools_json) == 104 &&
                                      offsetof(rigllama_request, tool_choice) == 112 &&
                                      offsetof(rigllama_request, reasoning) == 116 &&
                                      offsetof(rigllama_request, presence_penalty) == 120 &&
                                      offsetof(rigllama_request, mirostat) == 164 &&
                                      offsetof(rigllama_request, n_logprobs) == 176 &&
                                      offsetof(rigllama_request, logit_bias_json) == 184 &&
                                      offsetof(rigllama_request, dry_sequence_breakers) == 192 &&
                                      offsetof(rigllama_request, n_dry_sequence_breakers) == 200 &&
                                      offsetof(rigllama_request, draft_max) == 208 &&
                                      offsetof(rigllama_request, prompt_tokens) == 216 &&
                                      offsetof(rigllama_request, n_prompt_tokens) == 224 &&
                                      offsetof(rigllama_request, suffix) == 232 &&
                                      offsetof(rigllama_request, adaptive_target) == 240 &&
                                      offsetof(rigllama_request, adaptive_decay) == 244 &&
                                      offsetof(rigllama_request, reasoning_budget) == 248 &&
                                      offsetof(rigllama_request, lora_ids) == 256 &&
                                      offsetof(rigllama_request, lora_scales) == 264 &&
                                      offsetof(rigllama_request, n_loras) == 272),
              "rigllama_request layout");
// v0.3's suffix, adaptive-p, reasoning budget and per-request LoRA on i686 as well, as
// tests/c/test_contract checks them.
static_assert(sizeof(void *) != 4 || (sizeof(rigllama_request) == 192 && offsetof(rigllama_request, suffix) == 164 &&
                                      offsetof(rigllama_request, adaptive_target) == 168 &&
                                      offsetof(rigllama_request, adaptive_decay) == 172 &&
                                      offsetof(rigllama_request, reasoning_budget) == 176 &&
                                      offsetof(rigllama_request, lora_ids) == 180 &&
                                      offsetof(rigllama_request, lora_scales) == 184 &&
                                      offsetof(rigllama_request, n_loras) == 188),
              "rigllama_request layout (i686)");

namespace {

int failures = 0;

void expect(bool ok, const std::string &what) {
    std::cout << (ok ? "ok    " : "FAIL  ") << what << std::endl;
    if (!ok)
        failures++;
}

void stream_a_reply(rigllama::Engine &engine) {
    rigllama::Request request("The three primary colors are");
    request.raw().max_tokens(24).temperature(0.0f);
    std::string text;
    int pieces = 0;
    std::cout << "[stream] The three primary colors are" << std::flush;
    rigllama::Usage usage = engine.stream(request, [&](std::string_view piece) {
        std::cout << piece << std::flush;
        text += piece;
        pieces++;
    });
    std::cout << std::endl;
    expect(pieces > 0 && !text.empty(), "stream delivered " + std::to_string(pieces) + " pieces");
    expect(usage.completion_tokens > 0 && usage.completion_tokens <= 24,
           "usage.completion_tokens = " + std::to_string(usage.completion_tokens));
    expect(usage.finish_reason == RIGLLAMA_FINISH_REASON_LENGTH || usage.finish_reason == RIGLLAMA_FINISH_REASON_STOP,
           "finish_reason = " + std::to_string(usage.finish_reason));
    expect(usage.image_tokens == 0,
           "a text request has no image tokens (usage.image_tokens = " + std::to_string(usage.image_tokens) + ")");
}

// A second thread cancels the engine once the first piece has arrived; the stream throws.
void cancel_a_stream_from_another_thread(rigllama::Engine &engine) {
    rigllama::Request request("Write a very long story about the history of the sea.");
    request.raw().max_tokens(32).temperature(0.0f);
    std::promise<void> first_piece;
    std::thread canceller([&] {
        first_piece.get_future().wait();
        engine.cancel();
    });
    bool signalled = false;
    rigllama_status status = RIGLLAMA_STATUS_OK;
    try {
        engine.stream(request, [&](std::string_view) {
            if (!signalled) {
                signalled = true;
                first_piece.set_value();
            }
        });
    } catch (const rigllama::Error &e) {
        status = e.status();
        std::cout << "[cancel stream] rigllama::Error: " << e.what() << std::endl;
    }
    if (!signalled)
        first_piece.set_value();
    canceller.join();
    expect(status == RIGLLAMA_STATUS_CANCELLED,
           std::string("cancelled stream threw CANCELLED (got ") + rigllama_status_str(status) + ")");
}

// The job API: poll until the first text, cancel the job, poll to its final event.
void cancel_a_job(rigllama::Engine &engine) {
    rigllama::Request request("Once upon a time");
    request.raw().max_tokens(32).temperature(0.0f);
    rigllama::Job job = engine.submit(request);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    rigllama::Event event;
    do {
        event = job.poll(1000);
    } while (event.kind == RIGLLAMA_EVENT_KIND_NONE && std::chrono::steady_clock::now() < deadline);
    expect(event.kind == RIGLLAMA_EVENT_KIND_TEXT, "job produced text before the cancel");
    job.cancel();
    while (!event.final() && std::chrono::steady_clock::now() < deadline)
        event = job.poll(1000);
    std::cout << "[cancel job] final event kind " << event.kind << ", status "
              << rigllama_status_str(event.status) << ", message \"" << event.message << "\"" << std::endl;
    expect(event.kind == RIGLLAMA_EVENT_KIND_ERROR && event.status == RIGLLAMA_STATUS_CANCELLED,
           "cancelled job ended with ERROR/CANCELLED");
}

// A JSON string literal for s.
std::string json_string(const std::string &s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20) {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\u%04x", c);
            out += esc;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

// A "save game": play a turn, save the snapshot for the next one, load it into a second engine
// (as another process would after reading it from a file) and continue there from the cache.
void save_and_load_a_snapshot(rigllama::Engine &engine, const std::string &model) {
    std::string first = R"([{"role":"user","content":"Name three rivers in Europe."}])";
    rigllama::Request turn;
    turn.messages(first).max_tokens(16).temperature(0.0f);
    std::string reply = engine.complete(turn);
    std::string next_messages = first.substr(0, first.size() - 1) + R"(,{"role":"assistant","content":)" +
                                json_string(reply) + R"(},{"role":"user","content":"Which is the longest?"}])";
    rigllama::Request next;
    next.messages(next_messages).max_tokens(8).temperature(0.0f);
    std::vector<uint8_t> save = engine.save_snapshot(next);

    rigllama::Engine restored = rigllama::Engine::open(model);
    restored.load_snapshot(save);
    rigllama::Usage usage;
    std::string text = restored.complete(next, &usage);
    std::cout << "[snapshot] " << save.size() << " bytes; in a second engine " << usage.cached_prompt_tokens
              << " of " << usage.prompt_tokens << " prompt tokens came from it (dropped_tokens "
              << usage.dropped_tokens << "): " << text << std::endl;
    expect(usage.cached_prompt_tokens > usage.prompt_tokens / 2, "the loaded snapshot is reused");

    save.resize(save.size() / 2);
    try {
        restored.load_snapshot(save);
        expect(false, "a truncated snapshot throws");
    } catch (const rigllama::Error &e) {
        expect(e.status() == RIGLLAMA_STATUS_INVALID_ARGUMENT, std::string("a truncated snapshot throws: ") + e.what());
    }
}

// Two jobs at once: submitted while the engine is paused so they start together, polled
// round-robin from this thread; a pause while both run holds them, resume lets both finish.
void two_jobs_at_once(const std::string &model) {
    rigllama::Engine engine = rigllama::Engine::open(model, 0, RIGLLAMA_CONTEXT_OVERFLOW_FAIL, 2);
    engine.pause();
    rigllama::Request chatter("The blacksmith told a long story about");
    chatter.raw().max_tokens(12).temperature(0.0f);
    rigllama::Request line("The guard pointed to the exit and said");
    line.raw().max_tokens(12).temperature(0.0f).priority(10);
    rigllama::Job jobs[2] = {engine.submit(chatter), engine.submit(line)};
    expect(jobs[1].poll(200).kind == RIGLLAMA_EVENT_KIND_NONE, "nothing runs while paused");
    engine.resume();
    int texts[2] = {0, 0};
    bool done[2] = {false, false}, paused = false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!(done[0] && done[1]) && std::chrono::steady_clock::now() < deadline) {
        for (int i = 0; i < 2; i++) {
            for (rigllama::Event event; !done[i];) {
                event = jobs[i].poll(0);
                if (event.kind == RIGLLAMA_EVENT_KIND_NONE)
                    break;
                if (event.kind == RIGLLAMA_EVENT_KIND_TEXT) {
                    texts[i]++;
                    continue;
                }
                done[i] = true;
                uint32_t tokens = event.kind == RIGLLAMA_EVENT_KIND_DONE ? jobs[i].usage().completion_tokens : 0;
                expect(tokens == 12, "job " + std::to_string(i) + " done with " + std::to_string(tokens) + " tokens");
            }
        }
        if (!paused && texts[0] > 0 && texts[1] > 0) {
            paused = true;
            expect(!done[0] && !done[1], "both jobs ran at once");
            engine.pause(); // e.g. a level load that wants every core
            engine.resume();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::cout << "[two at once] " << texts[0] << " and " << texts[1] << " pieces" << std::endl;
}

// v0.2 structured output: a grammar decides the reply of chat() exactly, and apply_template
// shows how a tool list reaches the model, without running anything.
void grammar_and_tools(rigllama::Engine &engine) {
    rigllama::Request question("Is the sky blue?");
    // No thinking before a constrained answer (templates without the switch ignore it).
    question.grammar(R"(root ::= ("yes" | "no") ".")").reasoning(RIGLLAMA_REASONING_OFF).max_tokens(8).temperature(0.0f);
    rigllama::Usage usage;
    std::string message = engine.chat(question, &usage);
    std::cout << "[grammar] " << message << std::endl;
    expect((message.find(R"("content":"yes.")") != std::string::npos ||
            message.find(R"("content":"no.")") != std::string::npos) &&
               usage.finish_reason == RIGLLAMA_FINISH_REASON_STOP,
           "the grammar decided the reply (finish_reason " + std::to_string(usage.finish_reason) + ")");

    rigllama::Request ask("What is the weather in Paris?");
    ask.tools_json(R"([{"type":"function","function":{"name":"get_weather","description":"Weather in a city",)"
                   R"("parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}])")
        .tool_choice(RIGLLAMA_TOOL_CHOICE_REQUIRED);
    std::string prompt = engine.apply_template(ask);
    expect(prompt.find("get_weather") != std::string::npos,
           "apply_template renders the tool (" + std::to_string(prompt.size()) + " characters)");
    try {
        ask.grammar("root ::= \"a\"");
        engine.chat(ask);
        expect(false, "a grammar beside tools the model must call is refused");
    } catch (const rigllama::Error &e) {
        expect(e.status() == RIGLLAMA_STATUS_INVALID_ARGUMENT,
               std::string("a grammar beside tools the model must call is refused: ") + e.what());
    }
}

// The smallest JSON reader the logprobs check needs. Malformed text throws std::runtime_error.
struct Json {
    enum Kind { NUL, BOOL, NUMBER, STRING, ARRAY, OBJECT } kind = NUL;
    double number = 0;             // NUMBER (BOOL: 1 or 0)
    std::string text;              // STRING, as UTF-8
    std::vector<std::string> keys; // OBJECT, beside values
    std::vector<Json> values;      // ARRAY items, OBJECT values

    const Json &at(const std::string &key) const {
        for (size_t k = 0; k < keys.size(); k++)
            if (keys[k] == key)
                return values[k];
        throw std::runtime_error("no \"" + key + "\" in a JSON object");
    }

    static Json parse(std::string_view s) {
        size_t i = 0;
        Json value = parse_value(s, i);
        if (skip_space(s, i) != s.size())
            throw std::runtime_error("text after the JSON value");
        return value;
    }

private:
    static size_t skip_space(std::string_view s, size_t &i) {
        while (i < s.size() && std::strchr(" \t\r\n", s[i]) && s[i])
            i++;
        return i;
    }

    // The next character that is not white space.
    static char take(std::string_view s, size_t &i) {
        if (skip_space(s, i) >= s.size())
            throw std::runtime_error("unexpected end of the JSON text");
        return s[i++];
    }

    static Json parse_value(std::string_view s, size_t &i) {
        Json v;
        char c = take(s, i);
        if (c == '{' || c == '[') {
            char close = c == '{' ? '}' : ']';
            v.kind = c == '{' ? OBJECT : ARRAY;
            if (skip_space(s, i) < s.size() && s[i] == close) {
                i++;
                return v;
            }
            do {
                if (v.kind == OBJECT) {
                    if (take(s, i) != '"')
                        throw std::runtime_error("expected a key in a JSON object");
                    v.keys.push_back(parse_string(s, i));
                    if (take(s, i) != ':')
                        throw std::runtime_error("expected ':' in a JSON object");
                }
                v.values.push_back(parse_value(s, i));
                c = take(s, i);
            } while (c == ',');
            if (c != close)
                throw std::runtime_error(std::string("expected ',' or '") + close + "' in JSON");
        } else if (c == '"') {
            v.kind = STRING;
            v.text = parse_string(s, i);
        } else { // true, false, null or a number
            size_t start = --i;
            while (i < s.size() && std::strchr("+-.0123456789eEtruefalsn", s[i]) && s[i])
                i++;
            std::string word(s.substr(start, i - start));
            if (word == "true" || word == "false") {
                v.kind = BOOL;
                v.number = word == "true";
            } else if (word != "null") {
                char *end = nullptr;
                v.kind = NUMBER;
                v.number = std::strtod(word.c_str(), &end);
                if (word.empty() || *end)
                    throw std::runtime_error("bad JSON value: " + word);
            }
        }
        return v;
    }

    // A string's characters after its opening quote, through the closing one.
    static std::string parse_string(std::string_view s, size_t &i) {
        std::string out;
        while (true) {
            if (i >= s.size())
                throw std::runtime_error("unterminated JSON string");
            char c = s[i++];
            if (c == '"')
                return out;
            if (c != '\\') {
                out += c;
                continue;
            }
            c = i < s.size() ? s[i++] : '\0';
            const char *escapes = "\"\\/bfnrt", *meanings = "\"\\/\b\f\n\r\t";
            if (const char *e = std::strchr(escapes, c); e && c) {
                out += meanings[e - escapes];
            } else if (c == 'u' && i + 4 <= s.size()) {
                // As UTF-8 (a surrogate half alone: enough to compare two tokens).
                unsigned long u = std::stoul(std::string(s.substr(i, 4)), nullptr, 16);
                i += 4;
                if (u < 0x80) {
                    out += static_cast<char>(u);
                } else if (u < 0x800) {
                    out += static_cast<char>(0xC0 | (u >> 6));
                    out += static_cast<char>(0x80 | (u & 0x3F));
                } else {
                    out += static_cast<char>(0xE0 | (u >> 12));
                    out += static_cast<char>(0x80 | ((u >> 6) & 0x3F));
                    out += static_cast<char>(0x80 | (u & 0x3F));
                }
            } else {
                throw std::runtime_error("bad escape in a JSON string");
            }
        }
    }
};

// v0.2 log-probabilities: with n_logprobs 3 the job sends LOGPROBS events, JSON arrays of
// {"token","id","logprob","bytes","top_logprobs":[...]}, before the text of their tokens. At
// temperature 0 the chosen token is the most likely one: the first of its top_logprobs.
void logprobs_of_a_job(rigllama::Engine &engine) {
    rigllama::Request request("The capital of France is");
    request.raw().max_tokens(8).temperature(0.0f).n_logprobs(3);
    rigllama::Job job = engine.submit(request);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    rigllama::Event event;
    std::vector<Json> entries;
    std::string tokens, problem;
    bool ok = true;
    try {
        do {
            event = job.poll(1000);
            if (event.kind == RIGLLAMA_EVENT_KIND_LOGPROBS) {
                Json batch = Json::parse(event.text);
                if (batch.kind != Json::ARRAY)
                    throw std::runtime_error("the LOGPROBS text is not a JSON array");
                entries.insert(entries.end(), batch.values.begin(), batch.values.end());
            }
        } while (!event.final() && std::chrono::steady_clock::now() < deadline);
        for (const Json &entry : entries) {
            const std::vector<Json> &top = entry.at("top_logprobs").values;
            ok = ok && entry.at("logprob").number <= 0 && !top.empty() && top.size() <= 3 &&
                 top[0].at("id").number == entry.at("id").number && top[0].at("token").text == entry.at("token").text;
            for (size_t k = 1; ok && k < top.size(); k++)
                ok = top[k].at("logprob").number <= top[k - 1].at("logprob").number;
            tokens += entry.at("token").text + "|";
        }
    } catch (const std::exception &e) {
        ok = false;
        problem = std::string(", ") + e.what();
    }
    std::cout << "[logprobs] " << tokens << std::endl;
    expect(ok && event.kind == RIGLLAMA_EVENT_KIND_DONE && !entries.empty(),
           std::to_string(entries.size()) + " logprobs entries, each <= 0 with at most 3 alternatives, the first " +
               "one chosen (kind " + std::to_string(event.kind) + problem + ")");
}

// v0.2 prompt-lookup speculation: with draft_max 8, tokens guessed from the prompt are verified
// in the same decode; usage counts them (drafted_tokens) and the ones the sampler confirmed
// (accepted_tokens). plain is the usage of a request without draft_max (0): it guesses nothing.
void prompt_lookup(rigllama::Engine &engine, const rigllama::Usage &plain) {
    expect(plain.drafted_tokens == 0 && plain.accepted_tokens == 0,
           "without draft_max nothing is guessed (drafted " + std::to_string(plain.drafted_tokens) + ", accepted " +
               std::to_string(plain.accepted_tokens) + ")");
    rigllama::Request request("Repeat exactly: the quick brown fox jumps over the lazy dog. "
                              "the quick brown fox jumps over the lazy dog.");
    request.raw().max_tokens(48).temperature(0.0f).draft_max(8);
    rigllama::Usage usage;
    std::string text = engine.complete(request, &usage);
    std::cout << "[draft] " << json_string(text) << ": " << usage.completion_tokens << " tokens, "
              << usage.drafted_tokens << " guessed, " << usage.accepted_tokens << " accepted" << std::endl;
    expect(usage.drafted_tokens > 0 && usage.accepted_tokens <= usage.drafted_tokens,
           "draft_max 8 guesses from a repeated prompt (drafted " + std::to_string(usage.drafted_tokens) +
               ", accepted " + std::to_string(usage.accepted_tokens) + ")");
}

// v0.3 token ids: text -> ids -> text is exact in every script, tokenize's count is
// count_tokens' for the same raw prompt, text that makes more ids than tokenize's first buffer
// holds comes back whole, an id outside the vocabulary throws INVALID_ARGUMENT naming it, and
// the ids as prompt_tokens give the reply the text gives as a raw prompt.
void token_ids(rigllama::Engine &engine) {
    const char *corpus[] = {"Hello, world!", "Übergrößenträger naïve café", "日本語のテキスト", "emoji 🦀🚀",
                            "Привет, мир! مرحبا بالعالم", "<start_of_turn>user\nHi<end_of_turn>\n"};
    for (const char *text : corpus) {
        std::vector<int32_t> ids = engine.tokenize(text);
        std::string back = engine.detokenize(ids);
        rigllama::Request raw(text);
        uint32_t counted = engine.count_tokens(raw.raw());
        expect(back == text && !ids.empty() && ids.size() == counted,
               "tokenize " + json_string(text) + ": " + std::to_string(ids.size()) + " ids (count_tokens " +
                   std::to_string(counted) + "), detokenize gives " + json_string(back));
    }
    // Digits are one id each here: more ids than the first buffer (size / 2 + 8) holds.
    std::string digits;
    for (int i = 0; i < 20; i++)
        digits += "0123456789";
    std::vector<int32_t> many = engine.tokenize(digits);
    expect(many.size() > digits.size() / 2 + 8 && engine.detokenize(many) == digits,
           "tokenize grows its buffer: " + std::to_string(many.size()) + " ids for " +
               std::to_string(digits.size()) + " digits, round trip exact");
    std::vector<int32_t> plain = engine.tokenize("<start_of_turn>", 0);
    expect(plain.size() > 1 && engine.detokenize(plain, 0) == "<start_of_turn>",
           "flags 0: special-token text is plain text (" + std::to_string(plain.size()) + " ids)");
    expect(engine.detokenize(std::vector<int32_t>{}).empty(), "no ids: empty text");

    try {
        engine.detokenize(std::vector<int32_t>{many[0], 10000000});
        expect(false, "an id outside the vocabulary throws");
    } catch (const rigllama::Error &e) {
        expect(e.status() == RIGLLAMA_STATUS_INVALID_ARGUMENT && std::strstr(e.what(), "tokens[1] = 10000000"),
               std::string("an id outside the vocabulary throws INVALID_ARGUMENT: ") + e.what());
    }

    // Each from an empty cache: a prompt whose first tokens are cached evaluates only its last
    // one, and a single token's logits round differently from a batch's (this prompt has a
    // near tie that such rounding flips).
    const char *prompt = "The old lighthouse keeper looked out at the storm and";
    rigllama::Request as_text(prompt);
    as_text.raw().max_tokens(16).temperature(0.0f);
    engine.reset();
    std::string from_text = engine.complete(as_text);
    std::vector<int32_t> ids = engine.tokenize(prompt);
    rigllama::Request as_ids;
    as_ids.prompt_tokens(ids).max_tokens(16).temperature(0.0f);
    rigllama::Usage usage;
    engine.reset();
    std::string from_ids = engine.complete(as_ids, &usage);
    expect(from_ids == from_text && usage.prompt_tokens == ids.size(),
           "prompt_tokens (" + std::to_string(usage.prompt_tokens) + " ids) give the raw text's reply: " +
               json_string(from_ids) + (from_ids == from_text ? "" : ", the text's: " + json_string(from_text)));
    try {
        as_ids.prompt_tokens({ids[0], 10000000});
        engine.complete(as_ids);
        expect(false, "a prompt_tokens id outside the vocabulary throws");
    } catch (const rigllama::Error &e) {
        expect(e.status() == RIGLLAMA_STATUS_INVALID_ARGUMENT &&
                   std::strstr(e.what(), "prompt_tokens[1] = 10000000"),
               std::string("a prompt_tokens id outside the vocabulary throws INVALID_ARGUMENT: ") + e.what());
    }
}

// Appends the ids of text tokenized with no flags (no BOS, special-token text kept as text).
void append_plain(rigllama::Engine &engine, const std::string &text, std::vector<int32_t> &ids) {
    std::vector<int32_t> more = engine.tokenize(text, 0);
    ids.insert(ids.end(), more.begin(), more.end());
}

// llama-server's /infill layout on the FIM model (scripts/make-fim-model gives it FIM_PRE..
// FIM_SEP as ids 6..10, and FIM_REP/FIM_SEP add a repository header):
// [FIM_REP]myproject\n[FIM_SEP]filename\n[BOS][FIM_PRE]prefix[FIM_SUF]suffix[FIM_MID].
std::vector<int32_t> infill_layout(rigllama::Engine &engine, const std::string &prefix, const std::string &suffix) {
    std::vector<int32_t> ids{9};
    append_plain(engine, "myproject\n", ids);
    ids.push_back(10);
    append_plain(engine, "filename\n", ids);
    ids.insert(ids.end(), {2, 6});
    append_plain(engine, prefix, ids);
    ids.push_back(7);
    append_plain(engine, suffix, ids);
    ids.push_back(8);
    return ids;
}

// v0.3 fill-in-the-middle: a model without FIM tokens, or a suffix without raw(), throws
// INVALID_ARGUMENT; on $RIGLLAMA_FIM_MODEL count_tokens and apply_template give the /infill
// layout token for token (an empty prefix, sent as "", included) and the middle comes back.
void fill_in_the_middle(rigllama::Engine &plain_model) {
    const std::string prefix = "def add(a, b):\n    ", suffix = "\n\nprint(add(1, 2))\n";
    rigllama::Request request(prefix);
    request.suffix(suffix).raw().max_tokens(8).temperature(0.0f);
    try {
        plain_model.complete(request);
        expect(false, "a suffix on a model without FIM tokens throws");
    } catch (const rigllama::Error &e) {
        expect(e.status() == RIGLLAMA_STATUS_INVALID_ARGUMENT && std::strstr(e.what(), "fill-in-the-middle tokens"),
               std::string("a suffix on a model without FIM tokens throws INVALID_ARGUMENT: ") + e.what());
    }
    const char *fim_path = std::getenv("RIGLLAMA_FIM_MODEL");
    if (!fim_path || !*fim_path) {
        std::cout << "skip  fill-in-the-middle on a FIM model: RIGLLAMA_FIM_MODEL is not set "
                     "(scripts/make-fim-model MODEL DEST makes one)" << std::endl;
        return;
    }
    rigllama::Engine engine = rigllama::Engine::open(fim_path, 1024);
    try {
        rigllama::Request not_raw(prefix);
        engine.count_tokens(not_raw.suffix(suffix));
        expect(false, "a suffix without raw() throws");
    } catch (const rigllama::Error &e) {
        expect(e.status() == RIGLLAMA_STATUS_INVALID_ARGUMENT && std::strstr(e.what(), "raw_prompt 1"),
               std::string("a suffix without raw() throws INVALID_ARGUMENT: ") + e.what());
    }
    std::vector<int32_t> layout = infill_layout(engine, prefix, suffix);
    uint32_t counted = engine.count_tokens(request);
    expect(counted == layout.size(), "count_tokens of the infill request " + std::to_string(counted) +
                                         " == the /infill layout's " + std::to_string(layout.size()) + " tokens");
    std::string shown = engine.apply_template(request);
    expect(engine.tokenize(shown, rigllama::TOKENIZE_PARSE_SPECIAL) == layout,
           "apply_template shows the layout token for token: " + json_string(shown));
    rigllama::Request no_prefix;
    no_prefix.suffix(suffix).raw();
    std::vector<int32_t> empty_prefix = infill_layout(engine, "", suffix);
    counted = engine.count_tokens(no_prefix);
    expect(counted == empty_prefix.size(), "an empty prefix goes as \"\": " + std::to_string(counted) + " tokens (" +
                                               std::to_string(empty_prefix.size()) + ")");
    rigllama::Usage usage;
    std::string middle = engine.complete(request, &usage);
    std::cout << "[infill] " << json_string(prefix) << " + " << json_string(middle) << " + " << json_string(suffix)
              << std::endl;
    expect(!middle.empty() && usage.prompt_tokens == layout.size() && usage.dropped_tokens == 0,
           "the middle comes back (" + std::to_string(usage.completion_tokens) + " tokens; prompt_tokens " +
               std::to_string(usage.prompt_tokens) + ", dropped " + std::to_string(usage.dropped_tokens) + ")");
}

// v0.3 rerank: this model is not a reranker (INVALID_ARGUMENT naming it), no documents give no
// scores, and on $RIGLLAMA_RERANK_MODEL each document gets one finite score.
void rerank(rigllama::Engine &plain_model) {
    const std::vector<std::string> documents{"A cat is a small furry animal that purrs.",
                                             "Granite is a hard igneous rock.", "Cats sleep for most of the day."};
    try {
        plain_model.rerank("what is a cat?", documents);
        expect(false, "rerank on a model that is not a reranker throws");
    } catch (const rigllama::Error &e) {
        expect(e.status() == RIGLLAMA_STATUS_INVALID_ARGUMENT && std::strstr(e.what(), "not a reranker"),
               std::string("rerank on a model that is not a reranker throws INVALID_ARGUMENT: ") + e.what());
    }
    expect(plain_model.rerank("what is a cat?", {}).empty(), "rerank with no documents: no scores");
    const char *rerank_path = std::getenv("RIGLLAMA_RERANK_MODEL");
    if (!rerank_path || !*rerank_path) {
        std::cout << "skip  rerank scores on a reranker: RIGLLAMA_RERANK_MODEL is not set" << std::endl;
        return;
    }
    rigllama::Engine engine = rigllama::Engine::open(rerank_path, 1024);
    std::vector<float> scores = engine.rerank("what is a cat?", documents);
    std::string shown;
    bool finite = scores.size() == documents.size();
    for (float score : scores) {
        finite = finite && std::isfinite(score);
        shown += (shown.empty() ? "" : ", ") + std::to_string(score);
    }
    expect(finite, "rerank gives one finite score per document: " + shown);
}

// v0.3 adaptive-p: off by default (target -1, decay 0.90); a seeded request with
// adaptive_target 0.3 gives the same text twice and not the text it gives without; a target
// outside [0, 1] throws INVALID_ARGUMENT. Each run from an empty cache.
void adaptive_p(rigllama::Engine &engine) {
    rigllama::Request request("Once upon a time");
    expect(request.c().adaptive_target < 0.0f && std::fabs(request.c().adaptive_decay - 0.9f) < 1e-6f,
           "adaptive-p is off by default (adaptive_target " + std::to_string(request.c().adaptive_target) +
               ", adaptive_decay " + std::to_string(request.c().adaptive_decay) + ")");
    request.raw().max_tokens(32).temperature(1.0f).seed(1234);
    request.top_k(0).top_p(1.0f).min_p(0.0f);
    engine.reset();
    std::string plain = engine.complete(request);
    request.adaptive_target(0.3f);
    engine.reset();
    std::string first = engine.complete(request);
    engine.reset();
    std::string again = engine.complete(request);
    std::cout << "[adaptive-p] without: " << json_string(plain) << "; with 0.3: " << json_string(first) << std::endl;
    expect(first == again && first != plain,
           "adaptive_target 0.3 repeats a seeded reply (" + json_string(again) + ") and changes it");
    try {
        engine.complete(request.adaptive_target(1.5f));
        expect(false, "adaptive_target 1.5 throws");
    } catch (const rigllama::Error &e) {
        expect(e.status() == RIGLLAMA_STATUS_INVALID_ARGUMENT && std::strstr(e.what(), "adaptive_target"),
               std::string("adaptive_target 1.5 throws INVALID_ARGUMENT: ") + e.what());
    }
}

// v0.3 control vectors on their own engine: strength 0 gives exactly the base model's greedy
// text, strength 1 changes it (describe reports the vector), one made for a 64-wide model
// throws INVALID_ARGUMENT naming this model's 640, and clearing gives the base text again. Each
// greedy run from an empty cache (a cached prefix can round differently).
void control_vector(const std::string &model) {
    const char *dir = std::getenv("RIGLLAMA_CONTROL_VECTOR_DIR");
    if (!dir || !*dir) {
        std::cout << "skip  control vectors: RIGLLAMA_CONTROL_VECTOR_DIR is not set "
                     "(scripts/make-control-vector MODEL DIR makes them)" << std::endl;
        return;
    }
    const std::string vector = std::string(dir) + "/control-vector-random.gguf";
    const std::string wrong = std::string(dir) + "/control-vector-wrong-width.gguf";
    rigllama::Engine engine = rigllama::Engine::open(model, 1024);
    rigllama::Request request("The lighthouse keeper");
    request.raw().max_tokens(16).temperature(0.0f);
    auto greedy = [&] {
        engine.reset();
        return engine.complete(request);
    };
    std::string base = greedy();
    expect(engine.describe().find(R"("control_vector":null)") != std::string::npos,
           "describe: no control vector at first");
    engine.set_control_vector(vector, 0.0f);
    std::string same = greedy();
    expect(same == base, "strength 0 gives the base text " + json_string(base) + " (got " + json_string(same) + ")");
    engine.set_control_vector(vector, 1.0f);
    std::string steered = greedy();
    std::cout << "[control vector] base " << json_string(base) << "; steered " << json_string(steered) << std::endl;
    expect(steered != base, "strength 1 changes the text");
    std::string described = engine.describe();
    size_t at = described.find(R"("control_vector":)");
    std::string reported = at == std::string::npos ? described : described.substr(at, described.find('}', at) + 1 - at);
    expect(reported.find(R"("control_vector":{"path":)" + json_string(vector)) == 0 &&
               reported.find(R"("strength":1)") != std::string::npos &&
               reported.find(R"("layer_start":1,)") != std::string::npos,
           "describe reports the control vector (" + reported + ")");
    try {
        engine.set_control_vector(wrong, 1.0f);
        expect(false, "a control vector for another width throws");
    } catch (const rigllama::Error &e) {
        expect(e.status() == RIGLLAMA_STATUS_INVALID_ARGUMENT && std::strstr(e.what(), "640 wide"),
               std::string("a control vector for another width throws INVALID_ARGUMENT: ") + e.what());
    }
    engine.clear_control_vector();
    std::string back = greedy();
    expect(back == base, "cleared: the base text again (got " + json_string(back) + ")");
    expect(engine.describe().find(R"("control_vector":null)") != std::string::npos,
           "describe: no control vector after clearing");
}

// v0.3 reasoning budget: unlimited (-1) by default; below -1 throws INVALID_ARGUMENT naming
// the value; on this model, whose template has no thinking block, a budget of 8 has nothing to
// limit, so a greedy chat reply is the one it gives without. Each run from an empty cache.
void reasoning_budget(rigllama::Engine &engine) {
    rigllama::Request request("Name a colour.");
    expect(request.c().reasoning_budget == -1,
           "reasoning_budget is -1 (unlimited) by default (" + std::to_string(request.c().reasoning_budget) + ")");
    request.max_tokens(6).temperature(0.0f);
    engine.reset();
    rigllama::Usage plain_usage;
    std::string plain = engine.complete(request, &plain_usage);
    request.reasoning_budget(8);
    engine.reset();
    rigllama::Usage usage;
    std::string budgeted = engine.complete(request, &usage);
    std::cout << "[reasoning budget] without: " << json_string(plain) << "; with 8: " << json_string(budgeted)
              << std::endl;
    expect(!budgeted.empty() && budgeted == plain && usage.completion_tokens == plain_usage.completion_tokens &&
               usage.finish_reason == plain_usage.finish_reason,
           "reasoning_budget 8 without a thinking block: the same greedy reply (" + json_string(budgeted) + ")");
    try {
        engine.complete(request.reasoning_budget(-2));
        expect(false, "reasoning_budget -2 throws");
    } catch (const rigllama::Error &e) {
        expect(e.status() == RIGLLAMA_STATUS_INVALID_ARGUMENT && std::strstr(e.what(), "reasoning_budget -2"),
               std::string("reasoning_budget -2 throws INVALID_ARGUMENT: ") + e.what());
    }
}

// v0.3 per-request LoRA (Request::lora) on the shared engine, with $RIGLLAMA_LORA_DIR's adapter
// added at engine-wide scale 0: the greedy text is the base model's; the adapter at 1 for one
// request changes it, and is exactly the text scale 1 engine-wide gives a plain request; with it
// at 1 engine-wide, no_lora() (an empty list) gives the base text again and engine_lora() the
// adapted one; an unknown id and a scale of 1000 throw INVALID_ARGUMENT naming them. Each greedy
// run from an empty cache (greedy text repeats only from the same cache state). The adapter is
// removed after, whatever happens (snapshots are refused while one is applied).
void per_request_lora(rigllama::Engine &engine) {
    const char *dir = std::getenv("RIGLLAMA_LORA_DIR");
    if (!dir || !*dir) {
        std::cout << "skip  per-request LoRA: RIGLLAMA_LORA_DIR is not set "
                     "(scripts/make-lora-adapter MODEL DIR makes the adapters)" << std::endl;
        return;
    }
    rigllama::Request request("The capital of France is");
    request.raw().max_tokens(16).temperature(0.0f);
    expect(request.c().lora_ids == nullptr && request.c().lora_scales == nullptr && request.c().n_loras == 0,
           "lora_ids is NULL by default (the engine-wide adapters)");
    auto greedy = [&](const rigllama::Request &r) {
        engine.reset();
        return engine.complete(r);
    };
    const uint32_t id = engine.add_lora(std::string(dir) + "/gemma3-270m-lora.gguf", 0.0f);
    struct Removed {
        rigllama::Engine &engine;
        uint32_t id;
        ~Removed() {
            try {
                engine.remove_lora(id);
            } catch (const rigllama::Error &e) {
                std::cout << "FAIL  remove_lora: " << e.what() << std::endl;
                failures++;
            }
        }
    } removed{engine, id};
    std::string base = greedy(request);
    rigllama::Request own = request;
    own.lora({{id, 1.0f}});
    expect(own.c().lora_ids != nullptr && own.c().lora_ids[0] == id && own.c().lora_scales != nullptr &&
               own.c().lora_scales[0] == 1.0f && own.c().n_loras == 1,
           "lora({{id, 1}}) fills in lora_ids, lora_scales and n_loras 1");
    std::string adapted = greedy(own);
    std::cout << "[lora] base " << json_string(base) << "; adapter at 1 for the request " << json_string(adapted)
              << std::endl;
    expect(adapted != base, "the adapter at 1 for one request changes the text (engine-wide scale 0)");
    engine.set_lora_scale(id, 1.0f);
    std::string wide = greedy(request);
    expect(wide == adapted, "the adapter at 1 engine-wide gives a plain request the per-request text (got " +
                                json_string(wide) + ")");
    rigllama::Request none = request;
    none.no_lora();
    expect(none.c().lora_ids != nullptr && none.c().n_loras == 0, "no_lora(): lora_ids set, n_loras 0");
    std::string without = greedy(none);
    expect(without == base, "no_lora() with the adapter at 1 engine-wide: the base text (got " +
                                json_string(without) + ")");
    std::string back = greedy(none.engine_lora());
    expect(none.c().lora_ids == nullptr && back == adapted,
           "engine_lora(): the engine-wide adapter again (got " + json_string(back) + ")");
    try {
        engine.complete(rigllama::Request(request).lora({{77, 1.0f}}));
        expect(false, "an unknown lora id throws");
    } catch (const rigllama::Error &e) {
        expect(e.status() == RIGLLAMA_STATUS_INVALID_ARGUMENT && std::strstr(e.what(), "lora_ids[0] = 77"),
               std::string("an unknown lora id throws INVALID_ARGUMENT: ") + e.what());
    }
    try {
        engine.complete(rigllama::Request(request).lora({{id, 1000.0f}}));
        expect(false, "a lora scale of 1000 throws");
    } catch (const rigllama::Error &e) {
        expect(e.status() == RIGLLAMA_STATUS_INVALID_ARGUMENT && std::strstr(e.what(), "lora_scales[0]"),
               std::string("a lora scale of 1000 throws INVALID_ARGUMENT: ") + e.what());
    }
}

// v0.3 devices: the CPU is listed before any engine; the estimate for the default options plans
// what `engine` (opened with them) allocated; fit is refused; an unknown device is refused
// naming it and the CPU; "CPU" puts the model there, with no GPU fallback.
void devices(rigllama::Engine &engine, const std::string &model) {
    Json listed = Json::parse(rigllama::list_devices());
    expect(listed.kind == Json::ARRAY && !listed.values.empty() && listed.values[0].at("name").text == "CPU" &&
               listed.values[0].at("type").text == "cpu" &&
               listed.values[0].at("memory_total").number > double(uint64_t{1} << 30),
           "list_devices: the CPU first, with over 1 GiB");
    auto within_10_percent = [](const Json &planned, const Json &allocated, const char *key) {
        double p = planned.at(key).number, a = allocated.at(key).number;
        expect(a > 0 && std::fabs(p - a) <= 0.1 * a,
               std::string("estimate's ") + key + " " + std::to_string(p) + " within 10% of the allocated " +
                   std::to_string(a));
    };
    rigllama::EngineOptions options;
    options.model_path = model.c_str();
    Json planned = Json::parse(rigllama::estimate(options));
    Json described = Json::parse(engine.describe());
    expect(planned.at("n_ctx").number == 4096 && described.at("n_ctx").number == 4096,
           "estimate's n_ctx is 4096, the engine's");
    within_10_percent(planned.at("total"), described.at("memory"), "model_bytes");
    within_10_percent(planned.at("total"), described.at("memory"), "kv_cache_bytes");
    try {
        rigllama::EngineOptions fit = options;
        fit.fit = 1;
        rigllama::estimate(fit);
        expect(false, "estimate with fit throws");
    } catch (const rigllama::Error &e) {
        expect(e.status() == RIGLLAMA_STATUS_INVALID_ARGUMENT && std::strstr(e.what(), "fit"),
               std::string("estimate with fit throws INVALID_ARGUMENT: ") + e.what());
    }
    try {
        rigllama::EngineOptions unknown = options;
        unknown.devices = "NoSuchGPU0";
        rigllama::Engine::open(unknown);
        expect(false, "devices \"NoSuchGPU0\" throws");
    } catch (const rigllama::Error &e) {
        expect(e.status() == RIGLLAMA_STATUS_INVALID_ARGUMENT && std::strstr(e.what(), "NoSuchGPU0") &&
                   std::strstr(e.what(), "CPU"),
               std::string("devices \"NoSuchGPU0\" throws INVALID_ARGUMENT naming it and the CPU: ") + e.what());
    }
    rigllama::EngineOptions cpu = options;
    cpu.devices = "CPU";
    Json planned_cpu = Json::parse(rigllama::estimate(cpu));
    rigllama::Engine on_cpu = rigllama::Engine::open(cpu);
    Json described_cpu = Json::parse(on_cpu.describe());
    const Json &first = described_cpu.at("devices").values.at(0);
    expect(first.at("name").text == "CPU" && first.at("type").text == "cpu" &&
               described_cpu.at("gpu_fallback").kind == Json::NUL,
           "devices \"CPU\": describe's devices[0] is the CPU, gpu_fallback null");
    within_10_percent(planned_cpu.at("total"), described_cpu.at("memory"), "kv_cache_bytes");
    // This build has its CPU code built in: no modules to load, and describe says so.
    try {
        rigllama::set_backend_dir("/tmp");
        expect(false, "set_backend_dir in the static build throws");
    } catch (const rigllama::Error &e) {
        expect(e.status() == RIGLLAMA_STATUS_INVALID_ARGUMENT && std::strstr(e.what(), "dynamic-backends"),
               std::string("set_backend_dir in the static build throws INVALID_ARGUMENT naming dynamic-backends: ") +
                   e.what());
    }
    expect(described_cpu.at("cpu_backend").at("variant").text == "built-in",
           "describe's cpu_backend variant is built-in");
}

} // namespace

int main(int argc, char **argv) {
    const char *env_model = std::getenv("RIGLLAMA_MODEL");
    std::string model = argc > 1 ? argv[1] : env_model ? env_model : "";
    if (model.empty()) {
        std::cerr << "usage: " << argv[0] << " MODEL.gguf (or set RIGLLAMA_MODEL)" << std::endl;
        return 2;
    }
    try {
        std::cout << "rigllama " << rigllama::version() << " from C++" << std::endl;
        rigllama::EngineOptions defaults;
        expect(defaults.max_checkpoints == 32 && defaults.max_checkpoint_bytes == (uint64_t{512} << 20),
               "options_init's checkpoint defaults: max_checkpoints " + std::to_string(defaults.max_checkpoints) +
                   " (32), max_checkpoint_bytes " + std::to_string(defaults.max_checkpoint_bytes) + " (512 MiB)");
        expect(defaults.mmproj_path == nullptr, "options_init's mmproj_path is NULL");
        expect(defaults.thread_priority == RIGLLAMA_THREAD_PRIORITY_NORMAL,
               "options_init's thread_priority is NORMAL (" + std::to_string(defaults.thread_priority) + ")");
        // Refused before any model loads, naming the value.
        try {
            rigllama::EngineOptions bad_priority;
            bad_priority.model_path = model.c_str();
            bad_priority.thread_priority = 7;
            rigllama::Engine::open(bad_priority);
            expect(false, "thread_priority 7 throws");
        } catch (const rigllama::Error &e) {
            expect(e.status() == RIGLLAMA_STATUS_INVALID_ARGUMENT && std::strstr(e.what(), "thread_priority 7") != nullptr,
                   std::string("thread_priority 7 throws INVALID_ARGUMENT: ") + e.what());
        }
        // The default build has no vision: a projector is refused before any model loads.
        try {
            rigllama::EngineOptions with_projector;
            with_projector.model_path = model.c_str();
            with_projector.mmproj_path = "/nonexistent/mmproj.gguf";
            rigllama::Engine::open(with_projector);
            expect(false, "a projector without the mtmd feature throws");
        } catch (const rigllama::Error &e) {
            expect(e.status() == RIGLLAMA_STATUS_INVALID_ARGUMENT && std::strstr(e.what(), "mtmd") != nullptr,
                   std::string("a projector without the mtmd feature throws INVALID_ARGUMENT: ") + e.what());
        }
        try {
            rigllama::Engine::open("/nonexistent/model.gguf");
            expect(false, "a missing model throws");
        } catch (const rigllama::Error &e) {
            expect(e.status() == RIGLLAMA_STATUS_MODEL_LOAD_FAILED, std::string("a missing model throws: ") + e.what());
        }
        rigllama::Engine engine = rigllama::Engine::open(model);
        // A transformer's cache can be cut back to a prefix: no state checkpoints, default bounds.
        std::string described = engine.describe();
        size_t at = described.find(R"("checkpoints":{)");
        std::string checkpoints =
            at == std::string::npos ? described : described.substr(at, described.find('}', at) + 1 - at);
        expect(checkpoints ==
                   R"("checkpoints":{"active":false,"count":0,"bytes":0,"max_count":32,"max_bytes":536870912})",
               "describe's checkpoints: none for this model, the default bounds (" + checkpoints + ")");
        // Whether NORMAL was applied depends on the system, so only the request is checked.
        expect(described.find(R"("thread_priority":"normal")") != std::string::npos &&
                   described.find(R"("thread_priority_applied":)") != std::string::npos,
               "describe reports thread_priority normal and whether it was applied (" + described + ")");
        stream_a_reply(engine);
        cancel_a_stream_from_another_thread(engine);
        cancel_a_job(engine);
        // Cancels affect only earlier requests: the engine keeps serving.
        rigllama::Request next("Two plus two is");
        next.raw().max_tokens(4).temperature(0.0f);
        rigllama::Usage plain;
        expect(!engine.complete(next, &plain).empty(), "the engine serves a request after the cancels");
        save_and_load_a_snapshot(engine, model);
        two_jobs_at_once(model);
        grammar_and_tools(engine);
        logprobs_of_a_job(engine);
        prompt_lookup(engine, plain);
        token_ids(engine);
        fill_in_the_middle(engine);
        rerank(engine);
        adaptive_p(engine);
        control_vector(model);
        reasoning_budget(engine);
        per_request_lora(engine);
        devices(engine, model);
    } catch (const std::exception &e) {
        std::cout << "FAIL  unexpected exception: " << e.what() << std::endl;
        return 1;
    }
    std::cout << (failures ? "FAILED" : "all passed") << std::endl;
    return failures ? 1 : 0;
}
