// rigllama.hpp — a header-only C++17 wrapper over rigllama.h, installed beside it
// (`make install`, the release archive; CMake: link rigllama::rigllama or rigllama::static).
// Hand-written, unlike rigllama.h: update it with the C API (examples-cpp/main.cpp tests it).
//
//   auto engine = rigllama::Engine::open("model.gguf");
//   rigllama::Request request("The three primary colors are");
//   request.raw().max_tokens(24).temperature(0);
//   engine.stream(request, [](std::string_view piece) { std::cout << piece; });
//
//   std::vector<uint8_t> save = engine.save_snapshot(next_request);   // a "save game"
//   engine.load_snapshot(save);                                        // here or in another process
//   std::vector<float> v = engine.embed("A sentence.");                // L2-normalised
//
//   auto many = rigllama::Engine::open("model.gguf", 0, RIGLLAMA_CONTEXT_OVERFLOW_FAIL, 4);
//   rigllama::Job npc = many.submit(chatter), player = many.submit(line.priority(10));
//   many.pause(); /* a level load */ many.resume();                    // up to 4 at once
//
//   rigllama::Request ask("What is the weather in Paris?");
//   ask.tools_json(R"([{"type":"function","function":{...}}])").tool_choice(RIGLLAMA_TOOL_CHOICE_REQUIRED);
//   std::string message = engine.chat(ask);   // {"role":"assistant","content":null,"tool_calls":[...]}
//
//   rigllama::EngineOptions options;           // v0.2: every option, e.g. a quantized KV cache
//   options.model_path = "model.gguf";
//   options.type_k = options.type_v = RIGLLAMA_KV_TYPE_Q8_0;
//   options.max_checkpoints = 8;                 // recurrent/hybrid models' state copies (default
//   options.max_checkpoint_bytes = 256ull << 20; // 32 and 512 MiB; describe() reports them)
//   options.mmproj_path = "mmproj.gguf";         // images in messages (needs the mtmd feature)
//   options.thread_priority = RIGLLAMA_THREAD_PRIORITY_LOW;   // v0.3: a game keeps its frames
//   auto small = rigllama::Engine::open(options);
//   rigllama::Job job = small.submit(request.n_logprobs(3));   // LOGPROBS events: JSON arrays
//   uint32_t lora = small.add_lora("adapter.gguf", 0.5f);       // small.remove_lora(lora)
//   rigllama::Usage usage;                       // v0.2: prompt-lookup speculation, 8 guesses:
//   small.complete(request.draft_max(8), &usage);   // usage.drafted_tokens, usage.accepted_tokens
//                                                   // (usage.image_tokens: prompt tokens for images)
//
//   std::vector<int32_t> ids = engine.tokenize("The sea is");   // v0.3: what a raw prompt evaluates
//   std::string text = engine.detokenize(ids);                   // "The sea is" again
//   rigllama::Request by_id;
//   engine.complete(by_id.prompt_tokens(ids).max_tokens(24));    // the ids, sent verbatim
//
//   rigllama::Request gap("def add(a, b):\n    ");                 // v0.3: fill-in-the-middle (a model
//   coder.complete(gap.suffix("\n\nprint(add(1, 2))\n").raw());   // with FIM tokens): the middle
//   std::vector<float> scores = reranker.rerank("what is a cat?", {"A cat purrs.", "Granite."});
//
//   engine.complete(request.temperature(1).adaptive_target(0.3f));   // v0.3: adaptive-p sampling
//   engine.set_control_vector("vector.gguf", 0.8f);                 // v0.3: steer every layer
//   engine.set_control_vector("vector.gguf", 0.8f, 10, 14);         // or layers 10..14 (1-based)
//   engine.clear_control_vector();
//
//   rigllama::Request why("Why is the sky blue?");  // v0.3: a thinking model (Qwen3, DeepSeek-R1)
//   engine.complete(why.reasoning_budget(256));      // thinks for at most 256 tokens (0: none)
//
//   uint32_t style = engine.add_lora("style.gguf", 0.0f);  // v0.3: LoRA per request: off engine-wide,
//   engine.complete(request.lora({{style, 1.0f}}));       // on for this request alone;
//   engine.complete(request.no_lora());                   // no adapter at all (request.engine_lora():
//                                                         // the engine-wide ones again, the default)
//
//   std::string devices = rigllama::list_devices();   // v0.3: [{"name":"CPU","type":"cpu",...},...]
//   rigllama::EngineOptions tier;                      // before any engine exists
//   tier.model_path = "model.gguf";
//   tier.devices = "Vulkan0";                          // the layers there ("none": the CPU only)
//   std::string planned = rigllama::estimate(tier);    // {"n_ctx":..,"devices":[..],"total":{..}}:
//                                                      // what open(tier) would allocate, no weights read
//   rigllama::set_backend_dir("/opt/game/ggml");       // v0.3, dynamic-backends builds: the CPU
//                                                      // modules' directory, before the first engine
//
// Handles are std::unique_ptr with deleters that call the library's own free functions, so
// engines, jobs and returned strings are released exactly once, even when an exception
// unwinds. A failed call throws rigllama::Error carrying the status and the thread's
// rigllama_last_error() text. Nothing here adds threads or locks of its own: the thread
// rules of rigllama.h apply unchanged (every function may be called from any thread).
#ifndef RIGLLAMA_HPP
#define RIGLLAMA_HPP

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "rigllama.h"

namespace rigllama {

// A status other than OK, with the message rigllama_last_error() gave right after the call.
class Error : public std::runtime_error {
public:
    Error(rigllama_status status, const std::string &message)
        : std::runtime_error(std::string(rigllama_status_str(status)) + ": " + message), status_(status) {}
    rigllama_status status() const noexcept { return status_; }

private:
    rigllama_status status_;
};

namespace detail {

// Reads the last error before anything else can call into the library on this thread.
inline void check(rigllama_status status) {
    if (status != RIGLLAMA_STATUS_OK)
        throw Error(status, rigllama_last_error());
}

struct EngineDeleter {
    void operator()(rigllama_engine *engine) const noexcept { rigllama_engine_destroy(engine); }
};
struct JobDeleter {
    void operator()(rigllama_job *job) const noexcept { rigllama_job_free(job); }
};
struct StringDeleter {
    void operator()(char *text) const noexcept { rigllama_string_free(text); }
};
struct BytesDeleter {
    void operator()(uint8_t *data) const noexcept { rigllama_bytes_free(data); }
};

} // namespace detail

using EngineHandle = std::unique_ptr<rigllama_engine, detail::EngineDeleter>;
using JobHandle = std::unique_ptr<rigllama_job, detail::JobDeleter>;
using StringHandle = std::unique_ptr<char, detail::StringDeleter>;
using BytesHandle = std::unique_ptr<uint8_t, detail::BytesDeleter>;

// The C struct is used as is; the wrapper only makes sure struct_size is set by _init.
struct Usage : rigllama_usage {
    Usage() : rigllama_usage() { detail::check(rigllama_usage_init(this, sizeof(rigllama_usage))); }
};

// The same for the engine options (the library's defaults), for Engine::open(options). The
// pointers set in it (model_path, chat_template, fit_margins_mib, mmproj_path) need only
// outlive open().
// v0.2: max_checkpoints (default 32; 0 = none) and max_checkpoint_bytes (default 512 MiB) bound
// the state checkpoints of recurrent and hybrid models; other models ignore them.
// v0.2: mmproj_path (default NULL) names the multimodal projector (mmproj GGUF) made for the
// model, loaded with it so that images in messages_json reach it; a library built without the
// mtmd cargo feature refuses it (Error with RIGLLAMA_STATUS_INVALID_ARGUMENT).
// v0.3: thread_priority (default RIGLLAMA_THREAD_PRIORITY_NORMAL); _LOW makes the engine's
// threads yield to the host's, so a game's frame loop keeps its frames. describe() reports
// "thread_priority" and whether the system applied it ("thread_priority_applied").
// v0.3: rpc_servers (default NULL): comma-separated host:port of llama.cpp rpc-servers that take
// the offloaded layers (set n_gpu_layers); needs the rpc cargo feature. A server lost after the
// model loaded ends the process (llama.cpp aborts; the message reaches the log callback first).
// v0.3: devices (default NULL: llama.cpp's choice, every GPU, the CPU when a GPU cannot start,
// with describe()'s "gpu_fallback" saying why): comma-separated names as list_devices() reports
// them ("Vulkan0", "CUDA0,CUDA1"; "CPU" is the CPU), in that order, or "none" for the CPU only. A
// name that is not there throws Error (INVALID_ARGUMENT) naming it and the devices there are.
struct EngineOptions : rigllama_engine_options {
    EngineOptions() : rigllama_engine_options() {
        detail::check(rigllama_engine_options_init(this, sizeof(rigllama_engine_options)));
    }
};

// v0.3: one adapter of a request's own LoRA set (Request::lora): an id from Engine::add_lora
// and the scale it has for that request.
struct LoraScale {
    uint32_t id;
    float scale;
};

namespace detail {
// What an empty per-request LoRA set points lora_ids at: set, but with n_loras 0.
inline constexpr uint32_t no_lora_ids[1] = {0};
} // namespace detail

// A request that owns its strings, so the pointers in the C struct stay valid as long as it
// lives (the library copies them during each call anyway).
class Request {
public:
    explicit Request(std::string prompt = {}) : prompt_(std::move(prompt)) {
        detail::check(rigllama_request_init(&c_, sizeof c_));
    }
    Request &raw(bool on = true) { c_.raw_prompt = on ? 1u : 0u; return *this; }
    Request &max_tokens(uint32_t n) { c_.max_tokens = n; return *this; }
    Request &temperature(float t) { c_.temperature = t; return *this; }
    // v0.3 (the fields are v0.1's): top-p (0, 1], top-k (0 = off), min-p [0, 1] (0 = off) and
    // the repeat penalty (> 0; 1 = off); defaults from rigllama_request_init.
    Request &top_p(float p) { c_.top_p = p; return *this; }
    Request &top_k(int32_t k) { c_.top_k = k; return *this; }
    Request &min_p(float p) { c_.min_p = p; return *this; }
    Request &repeat_penalty(float penalty) { c_.repeat_penalty = penalty; return *this; }
    Request &seed(uint32_t s) { c_.seed = s; return *this; }
    // Higher runs first (default 0): on an engine with n_seq > 1, a waiting request of higher
    // priority pauses the lowest running one, which resumes after, losing nothing.
    Request &priority(int32_t p) { c_.priority = p; return *this; }
    Request &system(std::string text) { system_ = std::move(text); return *this; }
    Request &stop(std::string text) { stops_.push_back(std::move(text)); return *this; }
    // A conversation as messages_json: [{"role":"system|user|assistant","content":"..."}, ...].
    // v0.2: assistant turns with "tool_calls" (chat()'s reply as is) and
    // {"role":"tool","tool_call_id":"...","content":"..."} results are accepted too.
    Request &messages(std::string json) { messages_ = std::move(json); return *this; }
    // v0.2: GBNF the reply must match (start rule `root`).
    Request &grammar(std::string gbnf) { grammar_ = std::move(gbnf); return *this; }
    // v0.2: a JSON Schema; the reply is one JSON value valid against it.
    Request &json_schema(std::string schema) { json_schema_ = std::move(schema); return *this; }
    // v0.2: OpenAI's tools array, [{"type":"function","function":{"name":..,"parameters":{..}}}].
    Request &tools_json(std::string json) { tools_json_ = std::move(json); return *this; }
    // v0.2: RIGLLAMA_TOOL_CHOICE_AUTO (default), _NONE, or _REQUIRED (a call valid against its
    // schema, even from a small model).
    Request &tool_choice(rigllama_tool_choice choice) { c_.tool_choice = choice; return *this; }
    // v0.2: the template's thinking switch: RIGLLAMA_REASONING_AUTO (default), _OFF or _ON.
    Request &reasoning(rigllama_reasoning mode) { c_.reasoning = mode; return *this; }
    // v0.2 sampling (defaults from rigllama_request_init; rigllama.h has the ranges).
    // penalty_last_n is the window of the repeat, presence and frequency penalties (-1: the
    // whole context); DRY penalises repeating earlier text; XTC removes the likeliest candidates.
    Request &presence_penalty(float v) { c_.presence_penalty = v; return *this; }
    Request &frequency_penalty(float v) { c_.frequency_penalty = v; return *this; }
    Request &penalty_last_n(int32_t n) { c_.penalty_last_n = n; return *this; }
    Request &dry_multiplier(float v) { c_.dry_multiplier = v; return *this; }
    Request &dry_base(float v) { c_.dry_base = v; return *this; }
    Request &dry_allowed_length(int32_t n) { c_.dry_allowed_length = n; return *this; }
    Request &dry_penalty_last_n(int32_t n) { c_.dry_penalty_last_n = n; return *this; }
    // One of DRY's sequence breakers, texts that end a repetition (none added: llama.cpp's).
    Request &dry_sequence_breaker(std::string text) { breakers_.push_back(std::move(text)); return *this; }
    Request &xtc_probability(float p) { c_.xtc_probability = p; return *this; }
    Request &xtc_threshold(float t) { c_.xtc_threshold = t; return *this; }
    Request &typical_p(float p) { c_.typical_p = p; return *this; }
    Request &top_n_sigma(float n) { c_.top_n_sigma = n; return *this; }
    // RIGLLAMA_MIROSTAT_OFF (default), _V1 or _V2; it replaces top-k, typical-p, top-p, min-p, XTC.
    Request &mirostat(rigllama_mirostat mode) { c_.mirostat = mode; return *this; }
    Request &mirostat_tau(float tau) { c_.mirostat_tau = tau; return *this; }
    Request &mirostat_eta(float eta) { c_.mirostat_eta = eta; return *this; }
    // v0.3: adaptive-p (llama.cpp's adaptive_p sampler): the draw favours tokens near this
    // probability, adapting to what was chosen; it ends the chain in place of the plain draw.
    // In [0, 1]; negative = off (the default, -1). Not with mirostat; no effect at temperature 0.
    Request &adaptive_target(float target) { c_.adaptive_target = target; return *this; }
    // v0.3: adaptive-p's decay: it remembers about 1 / (1 - decay) tokens; [0, 0.99], default 0.90.
    Request &adaptive_decay(float decay) { c_.adaptive_decay = decay; return *this; }
    // v0.3: tokens the reply may think for: -1 = unlimited (the default), 0 = no thinking, N.
    // When the template's thinking block (Qwen3's and DeepSeek-R1's <think>, ...) reaches it,
    // the engine writes the block's end tag, as llama.cpp's reasoning-budget sampler does, and
    // the answer follows. A template without a thinking block has nothing to limit; with a
    // grammar or json_schema the budget is not applied. Below -1 throws Error (INVALID_ARGUMENT).
    Request &reasoning_budget(int32_t tokens) { c_.reasoning_budget = tokens; return *this; }
    // v0.3: this request's own LoRA adapters, in place of the engine-wide ones: exactly these
    // (ids from Engine::add_lora) at these scales (0 = no effect, 1 = as trained), every other
    // loaded adapter off for this request; the engine-wide scales are left as they are. An
    // empty list, lora({}) or no_lora(), is no adapter at all (the base model). engine_lora()
    // goes back to the default: the engine-wide adapters at their engine-wide scales. An id not
    // loaded, an id given twice or a scale outside +-100 throws Error (INVALID_ARGUMENT) naming
    // it (e.g. "lora_ids[0] = 77"); at most 64. Requests with different sets never share a
    // decode (they take turns), and a cached prefix is reused only by requests with the same set.
    Request &lora(std::vector<LoraScale> adapters) {
        std::vector<uint32_t> ids;
        std::vector<float> scales;
        ids.reserve(adapters.size());
        scales.reserve(adapters.size());
        for (const LoraScale &adapter : adapters) {
            ids.push_back(adapter.id);
            scales.push_back(adapter.scale);
        }
        lora_ids_ = std::move(ids);
        lora_scales_ = std::move(scales);
        return *this;
    }
    // v0.3: no LoRA adapter for this request, whatever is applied engine-wide (= lora({})).
    Request &no_lora() { return lora({}); }
    // v0.3: the engine-wide adapters at their engine-wide scales (the default; undoes lora()).
    Request &engine_lora() {
        lora_ids_.reset();
        lora_scales_.clear();
        return *this;
    }
    // v0.2: 1..20 makes a job deliver RIGLLAMA_EVENT_KIND_LOGPROBS events with this many
    // alternatives per token (and chat() a "logprobs" member).
    Request &n_logprobs(uint32_t n) { c_.n_logprobs = n; return *this; }
    // v0.2: token ids to biases, {"15043": -1.5}, or [[15043, -1.5], ["Paris", false]] (a token
    // id or a text, and a bias or false to ban it).
    Request &logit_bias_json(std::string json) { logit_bias_json_ = std::move(json); return *this; }
    // v0.2: prompt-lookup speculative decoding: up to this many tokens guessed from the
    // conversation's earlier text are verified in one decode (0 = off, the default; at most
    // 64; 8 is what the bench measures). usage.drafted_tokens and accepted_tokens report what
    // it did. Near ties can resolve differently from plain decoding (a batch rounds differently).
    Request &draft_max(uint32_t n) { c_.draft_max = n; return *this; }
    // v0.3: the prompt as token ids (Engine::tokenize), sent verbatim: nothing is added, so
    // tokenize with RIGLLAMA_TOKENIZE_ADD_SPECIAL (the default) for the BOS a raw prompt gets.
    // Leave the prompt, system() and messages() unset; raw() does not matter. An id outside
    // the vocabulary throws Error (INVALID_ARGUMENT) naming its index and value.
    Request &prompt_tokens(std::vector<int32_t> ids) { prompt_tokens_ = std::move(ids); return *this; }
    // v0.3: fill-in-the-middle: text is what comes after the gap, the prompt what comes before
    // it (either may be empty, not both), with raw(). The prompt is laid out with the
    // vocabulary's FIM tokens as llama-server lays out an /infill prompt, and the reply is the
    // middle; text that does not fit one batch is cut (usage.dropped_tokens counts the cut). A
    // model whose vocabulary has no FIM tokens throws Error (INVALID_ARGUMENT), as does a
    // suffix without raw(). With a suffix set, an empty prompt is sent as "" (not left unset).
    Request &suffix(std::string text) { suffix_ = std::move(text); return *this; }

    // A view of the C struct whose pointers refer into this object.
    const rigllama_request &c() const {
        c_.prompt = prompt_.empty() && !suffix_ ? nullptr : prompt_.c_str();
        c_.system_prompt = system_ ? system_->c_str() : nullptr;
        c_.messages_json = messages_ ? messages_->c_str() : nullptr;
        c_.grammar = grammar_ ? grammar_->c_str() : nullptr;
        c_.json_schema = json_schema_ ? json_schema_->c_str() : nullptr;
        c_.tools_json = tools_json_ ? tools_json_->c_str() : nullptr;
        stop_ptrs_.clear();
        for (const auto &s : stops_)
            stop_ptrs_.push_back(s.c_str());
        c_.stop = stop_ptrs_.empty() ? nullptr : stop_ptrs_.data();
        c_.n_stop = stop_ptrs_.size();
        c_.logit_bias_json = logit_bias_json_ ? logit_bias_json_->c_str() : nullptr;
        breaker_ptrs_.clear();
        for (const auto &s : breakers_)
            breaker_ptrs_.push_back(s.c_str());
        c_.dry_sequence_breakers = breaker_ptrs_.empty() ? nullptr : breaker_ptrs_.data();
        c_.n_dry_sequence_breakers = breaker_ptrs_.size();
        c_.prompt_tokens = prompt_tokens_ ? prompt_tokens_->data() : nullptr;
        c_.n_prompt_tokens = prompt_tokens_ ? prompt_tokens_->size() : 0;
        c_.suffix = suffix_ ? suffix_->c_str() : nullptr;
        // An empty set still needs a non-NULL lora_ids (NULL means the engine-wide adapters).
        c_.lora_ids = !lora_ids_ ? nullptr : lora_ids_->empty() ? detail::no_lora_ids : lora_ids_->data();
        c_.lora_scales = lora_scales_.empty() ? nullptr : lora_scales_.data();
        c_.n_loras = lora_ids_ ? lora_ids_->size() : 0;
        return c_;
    }

private:
    mutable rigllama_request c_{};
    std::string prompt_;
    std::optional<std::string> system_;
    std::optional<std::string> messages_;
    std::optional<std::string> grammar_;
    std::optional<std::string> json_schema_;
    std::optional<std::string> tools_json_;
    std::vector<std::string> stops_;
    mutable std::vector<const char *> stop_ptrs_;
    std::optional<std::string> logit_bias_json_;
    std::vector<std::string> breakers_;
    mutable std::vector<const char *> breaker_ptrs_;
    std::optional<std::vector<int32_t>> prompt_tokens_;
    std::optional<std::string> suffix_;
    std::optional<std::vector<uint32_t>> lora_ids_;
    std::vector<float> lora_scales_;
};

// v0.3: rigllama_engine_tokenize's flags, OR-ed. Both (the default of Engine::tokenize and
// detokenize) are what a raw prompt gets, and with the same flags both ways text -> ids -> text
// is exact.
inline constexpr uint32_t TOKENIZE_ADD_SPECIAL = RIGLLAMA_TOKENIZE_ADD_SPECIAL;
inline constexpr uint32_t TOKENIZE_PARSE_SPECIAL = RIGLLAMA_TOKENIZE_PARSE_SPECIAL;
inline constexpr uint32_t TOKENIZE_RAW_PROMPT = TOKENIZE_ADD_SPECIAL | TOKENIZE_PARSE_SPECIAL;

// One event of a job, copied out of the library's borrowed buffers. text: TEXT a piece of
// content, REASONING a piece of reasoning, TOOL_CALL one whole call as JSON
// {"id":"...","name":"...","arguments":{...}}, v0.2 LOGPROBS (n_logprobs > 0) a JSON array of
// {"token","id","logprob","bytes","top_logprobs":[...]}, one per token generated since the
// previous one, sent before the events carrying their text.
struct Event {
    rigllama_event_kind kind = RIGLLAMA_EVENT_KIND_NONE;
    rigllama_status status = RIGLLAMA_STATUS_OK;
    std::string text;
    std::string message;
    bool final() const noexcept { return kind == RIGLLAMA_EVENT_KIND_DONE || kind == RIGLLAMA_EVENT_KIND_ERROR; }
};

class Job {
public:
    explicit Job(JobHandle handle) : handle_(std::move(handle)) {}

    // The next event; NONE when nothing arrived within timeout_ms (0 = never block).
    Event poll(uint32_t timeout_ms = 0) {
        rigllama_event raw;
        detail::check(rigllama_event_init(&raw, sizeof raw));
        detail::check(rigllama_job_poll(handle_.get(), timeout_ms, &raw));
        Event event;
        event.kind = raw.kind;
        event.status = raw.status;
        if (raw.text)
            event.text.assign(raw.text, raw.text_len);
        if (raw.message)
            event.message = raw.message;
        return event;
    }
    void cancel() { detail::check(rigllama_job_cancel(handle_.get())); }
    Usage usage() const {
        Usage usage;
        detail::check(rigllama_job_usage(handle_.get(), &usage));
        return usage;
    }
    rigllama_job *get() const noexcept { return handle_.get(); }

private:
    JobHandle handle_;
};

class Engine {
public:
    // context_overflow: RIGLLAMA_CONTEXT_OVERFLOW_FAIL (default) or _SHIFT. n_seq: requests
    // served at once, advancing together (1..64; 0 = the default, 1).
    static Engine open(const std::string &model_path, uint32_t n_ctx = 0,
                       rigllama_context_overflow context_overflow = RIGLLAMA_CONTEXT_OVERFLOW_FAIL,
                       uint32_t n_seq = 0) {
        EngineOptions options;
        options.model_path = model_path.c_str();
        if (n_ctx)
            options.n_ctx = n_ctx;
        options.context_overflow = context_overflow;
        if (n_seq)
            options.n_seq = n_seq;
        return open(options);
    }

    // v0.2: every option (model_path included): type_k/type_v (RIGLLAMA_KV_TYPE_*),
    // flash_attention (RIGLLAMA_FLASH_ATTENTION_*), fit, fit_min_ctx, fit_margins_mib,
    // max_checkpoints, max_checkpoint_bytes, mmproj_path, thread_priority (v0.3), ...
    static Engine open(const EngineOptions &options) {
        rigllama_engine *raw = nullptr;
        detail::check(rigllama_engine_create(&options, &raw));
        return Engine(EngineHandle(raw));
    }

    std::string complete(const Request &request, Usage *usage = nullptr) {
        char *raw = nullptr;
        detail::check(rigllama_engine_complete(handle_.get(), &request.c(), &raw, usage));
        StringHandle text(raw);
        return std::string(text.get());
    }

    // The assistant's reply as OpenAI-shaped JSON text: {"role":"assistant","content":"..."|null,
    // "reasoning_content":"..." (when any),"tool_calls":[{"id":..,"type":"function","function":
    // {"name":..,"arguments":"{...}"}}] (when any)}; usage->finish_reason is TOOL_CALLS when it
    // ended in calls. Append it to messages as is for the next turn.
    std::string chat(const Request &request, Usage *usage = nullptr) {
        char *raw = nullptr;
        detail::check(rigllama_engine_chat(handle_.get(), &request.c(), &raw, usage));
        return std::string(StringHandle(raw).get());
    }

    // The exact prompt text the model would be given (template applied, tools rendered).
    std::string apply_template(const Request &request) {
        char *raw = nullptr;
        detail::check(rigllama_engine_apply_template(handle_.get(), &request.c(), &raw));
        return std::string(StringHandle(raw).get());
    }

    // Calls on_piece(std::string_view) with each piece on this thread. on_piece may return
    // void, or bool where false stops generation (finish reason CALLBACK). An exception it
    // throws stops generation and is rethrown here: it never unwinds through C frames.
    template <class F>
    Usage stream(const Request &request, F &&on_piece) {
        struct Context {
            F &fn;
            std::exception_ptr error;
        } context{on_piece, nullptr};
        auto trampoline = [](void *user_data, const char *piece, size_t len) noexcept -> int32_t {
            auto *ctx = static_cast<Context *>(user_data);
            try {
                if constexpr (std::is_same_v<std::invoke_result_t<F &, std::string_view>, bool>)
                    return ctx->fn(std::string_view(piece, len)) ? 0 : 1;
                else
                    ctx->fn(std::string_view(piece, len));
                return 0;
            } catch (...) {
                ctx->error = std::current_exception();
                return 1;
            }
        };
        Usage usage;
        rigllama_status status = rigllama_engine_stream(handle_.get(), &request.c(), trampoline, &context, &usage);
        if (context.error)
            std::rethrow_exception(context.error);
        detail::check(status);
        return usage;
    }

    Job submit(const Request &request) {
        rigllama_job *raw = nullptr;
        detail::check(rigllama_engine_submit(handle_.get(), &request.c(), &raw));
        return Job(JobHandle(raw));
    }

    // Thread-safe; returns at once. Requests submitted before it end with CANCELLED.
    void cancel() { detail::check(rigllama_engine_cancel(handle_.get())); }
    void reset() { detail::check(rigllama_engine_reset(handle_.get())); }
    // Holds the worker between two decode steps (returns within one step): running requests
    // keep their state, new ones wait; cancel and destroy still work. resume() goes on.
    void pause() { detail::check(rigllama_engine_pause(handle_.get())); }
    void resume() { detail::check(rigllama_engine_resume(handle_.get())); }

    // The engine as JSON (rigllama.h lists the members): model, n_ctx, "memory", ...; v0.3
    // "devices" (per device: the layers and memory there, the CPU first) and "gpu_fallback".
    std::string describe() {
        char *raw = nullptr;
        detail::check(rigllama_engine_describe(handle_.get(), &raw));
        return std::string(StringHandle(raw).get());
    }

    uint32_t count_tokens(const Request &request) {
        uint32_t n = 0;
        detail::check(rigllama_engine_count_tokens(handle_.get(), &request.c(), &n));
        return n;
    }

    // v0.3: the token ids of text (UTF-8; a NUL byte in it throws Error, INVALID_ARGUMENT).
    // flags: TOKENIZE_* OR-ed; the default, TOKENIZE_RAW_PROMPT, gives what a raw prompt
    // evaluates (as many ids as count_tokens says). The first call passes a buffer of
    // text.size() / 2 + 8 ids, enough for most text; when the text makes more, the library says
    // how many and the call is made again with that many.
    std::vector<int32_t> tokenize(std::string_view text, uint32_t flags = TOKENIZE_RAW_PROMPT) {
        std::vector<int32_t> ids(text.size() / 2 + 8);
        while (true) {
            size_t needed = 0;
            rigllama_status status = rigllama_engine_tokenize(handle_.get(), text.data(), text.size(), flags,
                                                              ids.data(), ids.size(), &needed);
            if (status == RIGLLAMA_STATUS_OK) {
                ids.resize(needed);
                return ids;
            }
            // Too small: *out_n says how many; any other failure leaves it below the capacity.
            if (status != RIGLLAMA_STATUS_INVALID_ARGUMENT || needed <= ids.size())
                detail::check(status);
            ids.resize(needed);
        }
    }

    // v0.3: the text of token ids (TOKENIZE_* flags: the inverse of the same flags in
    // tokenize). Bytes that are not whole characters (ids cut inside one) come out as U+FFFD;
    // an id outside the vocabulary throws Error (INVALID_ARGUMENT) naming its index and value.
    std::string detokenize(const int32_t *ids, size_t n, uint32_t flags = TOKENIZE_RAW_PROMPT) {
        char *raw = nullptr;
        detail::check(rigllama_engine_detokenize(handle_.get(), ids, n, flags, &raw));
        return std::string(StringHandle(raw).get());
    }
    std::string detokenize(const std::vector<int32_t> &ids, uint32_t flags = TOKENIZE_RAW_PROMPT) {
        return detokenize(ids.data(), ids.size(), flags);
    }

    // The KV cache of the longest cached prefix of request's prompt (pass the conversation's
    // next request), as a self-checking blob. Keep the messages yourself: the snapshot only
    // saves evaluating them again.
    std::vector<uint8_t> save_snapshot(const Request &request) {
        uint8_t *raw = nullptr;
        size_t len = 0;
        detail::check(rigllama_engine_save_snapshot(handle_.get(), &request.c(), &raw, &len));
        BytesHandle data(raw);
        return std::vector<uint8_t>(data.get(), data.get() + len);
    }

    // Throws Error (INVALID_ARGUMENT) for a blob from another model or a damaged one; the
    // engine keeps serving.
    void load_snapshot(const std::vector<uint8_t> &snapshot) {
        detail::check(rigllama_engine_load_snapshot(handle_.get(), snapshot.data(), snapshot.size()));
    }

    // The pooled, L2-normalised embedding of text.
    std::vector<float> embed(const std::string &text) {
        size_t dims = 0;
        detail::check(rigllama_engine_embed(handle_.get(), text.c_str(), nullptr, 0, &dims));
        std::vector<float> vector(dims);
        detail::check(rigllama_engine_embed(handle_.get(), text.c_str(), vector.data(), vector.size(), &dims));
        vector.resize(dims);
        return vector;
    }

    // v0.3: how well each of documents answers query, one score per document in their order
    // (higher is better; unnormalised, as llama-server's /rerank returns it), from a reranker
    // model (a GGUF with pooling type rank, as bge-reranker's). The chat KV cache is untouched.
    // A model that is not a reranker, an empty query or document, or a pair over 2048 tokens
    // throws Error (INVALID_ARGUMENT) naming it; no documents: an empty vector (at most 65,536).
    std::vector<float> rerank(const std::string &query, const std::vector<std::string> &documents) {
        std::vector<const char *> pointers;
        pointers.reserve(documents.size());
        for (const auto &document : documents)
            pointers.push_back(document.c_str());
        std::vector<float> scores(documents.size());
        detail::check(rigllama_engine_rerank(handle_.get(), query.c_str(), pointers.empty() ? nullptr : pointers.data(),
                                             pointers.size(), scores.empty() ? nullptr : scores.data()));
        return scores;
    }

    // v0.2: loads the LoRA adapter GGUF at path (made for this engine's model) and applies it at
    // scale (0 = no effect, 1 = as trained) beside any already applied; returns its id. Runs
    // after the requests submitted before it and empties the KV cache. Throws Error
    // (INVALID_ARGUMENT) for an adapter of another model or a file that is not one; the engine
    // keeps serving.
    uint32_t add_lora(const std::string &path, float scale = 1.0f) {
        uint32_t lora_id = 0;
        detail::check(rigllama_engine_add_lora(handle_.get(), path.c_str(), scale, &lora_id));
        return lora_id;
    }
    // v0.2: changes an applied adapter's scale; empties the KV cache.
    void set_lora_scale(uint32_t lora_id, float scale) {
        detail::check(rigllama_engine_set_lora_scale(handle_.get(), lora_id, scale));
    }
    // v0.2: removes an adapter and frees it; empties the KV cache.
    void remove_lora(uint32_t lora_id) { detail::check(rigllama_engine_remove_lora(handle_.get(), lora_id)); }

    // v0.3: adds the control vector GGUF at path (direction.N tensors made for this engine's
    // model, as llama.cpp's cvector-generator writes them) times strength (finite, within +-100;
    // 0 = no effect) to the output of layers layer_start..layer_end inclusive (1-based; 0, 0 =
    // every layer), replacing any control vector set before. Runs after the requests submitted
    // before it and empties the KV cache. A file that is not a control vector, one made for a
    // model of another width, or a layer range outside the model throws Error
    // (INVALID_ARGUMENT) with the reason; the engine keeps serving. describe() reports it
    // ("control_vector"); a reload drops it; snapshots are refused while it is set.
    void set_control_vector(const std::string &path, float strength = 1.0f, int32_t layer_start = 0,
                            int32_t layer_end = 0) {
        detail::check(rigllama_engine_set_control_vector(handle_.get(), path.c_str(), strength, layer_start, layer_end));
    }
    // v0.3: removes the control vector, if one is set; empties the KV cache.
    void clear_control_vector() { detail::check(rigllama_engine_clear_control_vector(handle_.get())); }

    rigllama_engine *get() const noexcept { return handle_.get(); }

private:
    explicit Engine(EngineHandle handle) : handle_(std::move(handle)) {}
    EngineHandle handle_;
};

inline std::string version() { return rigllama_version(); }

// v0.3: the devices this library can use on this machine, callable before any engine exists:
// a JSON array, the CPU first (always there, named "CPU"), each {"name","description","type"
// ("cpu", "gpu", "igpu" or "accel"),"memory_total","memory_free"} (bytes, as the driver reports
// them now; the host's RAM for the CPU). A name is what EngineOptions::devices takes.
inline std::string list_devices() {
    char *raw = nullptr;
    detail::check(rigllama_list_devices(&raw));
    return std::string(StringHandle(raw).get());
}

// v0.3: loads ggml's CPU modules (libggml-cpu-*.so, the best this CPU runs is used) from the
// directory `dir` instead of the one librigllama.so was loaded from (or $RIGLLAMA_BACKEND_DIR).
// Process-wide; call it before the first engine is opened. Only a library built with the
// dynamic-backends feature loads modules: the default build has its CPU code built in and
// throws Error (INVALID_ARGUMENT) saying so, as does a directory without modules, or another
// directory once they are loaded. describe()'s "cpu_backend" names the module in use
// ({"variant","module","features"}; variant "built-in" in the default build).
inline void set_backend_dir(const std::string &dir) { detail::check(rigllama_set_backend_dir(dir.c_str())); }

// v0.3: what Engine::open(options) would allocate, per device, without loading the weights
// (llama.cpp reads the file's metadata and plans every buffer), so a game can pick the largest
// model that fits: JSON {"n_ctx","devices":[{"name","type","layers","memory":{"model_bytes",
// "kv_cache_bytes","compute_bytes"},"memory_total","memory_free"}],"total":{"model_bytes",
// "kv_cache_bytes","compute_bytes"}}, the CPU (host memory) first. Within 10% of what
// describe() reports after the real open; a projector's memory is not included. The options
// are checked as open() checks them; fit and rpc_servers throw Error (INVALID_ARGUMENT). Runs
// on the calling thread, milliseconds to a second.
inline std::string estimate(const EngineOptions &options) {
    char *raw = nullptr;
    detail::check(rigllama_estimate(&options, &raw));
    return std::string(StringHandle(raw).get());
}

} // namespace rigllama

#endif // RIGLLAMA_HPP
