// The few entry points rigllama needs from llama.cpp's `common` chat layer (the one
// llama-server uses): Jinja chat templates, tool-call formats with their grammars and
// triggers, reasoning and tool-call parsing, JSON Schema to GBNF, and a GBNF check that
// reports the parser's reason. Everything crosses as JSON text so the Rust side needs no
// C++ types; every exception is caught here and returned as a message. None of these
// symbols is exported from librigllama (the cdylib exports only rigllama_*).

#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "chat.h"
#include "common.h"
#include "json-schema-to-grammar.h"
#include "log.h"
#include "llama-grammar.h"
#include "reasoning-budget.h"

using json = common_json;

namespace {

char * dup_string(const std::string & s) {
    char * out = static_cast<char *>(std::malloc(s.size() + 1));
    if (out) {
        std::memcpy(out, s.data(), s.size());
        out[s.size()] = '\0';
    }
    return out;
}

void set_error(char ** err, const std::string & message) {
    if (err) {
        *err = dup_string(message);
    }
}

// `common` logs through its own worker thread to stdout/stderr. A library must not print:
// pausing the main logger joins that thread and makes it drop messages.
void silence_common_log() {
    static std::once_flag once;
    std::call_once(once, [] { common_log_pause(common_log_main()); });
}

// Runs `body`; a C++ exception becomes *err and `failed` (no exception crosses into Rust).
template <typename T, typename F> T guarded(char ** err, T failed, F && body) {
    try {
        return body();
    } catch (const std::exception & e) {
        set_error(err, e.what());
    } catch (...) {
        set_error(err, "unknown C++ exception");
    }
    return failed;
}

template <typename F> char * guarded(char ** err, F && body) {
    return guarded<char *>(err, nullptr, body);
}

common_chat_tool_choice parse_tool_choice(const std::string & s) {
    if (s == "required") {
        return COMMON_CHAT_TOOL_CHOICE_REQUIRED;
    }
    if (s == "none") {
        return COMMON_CHAT_TOOL_CHOICE_NONE;
    }
    return COMMON_CHAT_TOOL_CHOICE_AUTO;
}

// Renders `messages` with the template alone (no llama.cpp workarounds around it), with
// `enable_thinking` set as given or left undefined. NULL when the template raises.
std::unique_ptr<std::string> render_plain(const common_chat_template & tmpl, const json & messages,
                                          const json & thinking) {
    try {
        jinja::context ctx(tmpl.source());
        json inputs = {
            { "messages", messages },
            { "bos_token", "" },
            { "eos_token", "" },
            { "add_generation_prompt", true },
        };
        if (!thinking.is_null()) {
            inputs["enable_thinking"] = thinking;
        }
        jinja::global_from_json(ctx, inputs, false);
        jinja::runtime runtime(ctx);
        auto parts = jinja::runtime::gather_string_parts(runtime.execute(tmpl.prog));
        return std::make_unique<std::string>(parts->as_string().str());
    } catch (const std::exception &) {
        return nullptr;
    }
}

// What the template does when the caller leaves `enable_thinking` undefined (as transformers
// does unless asked): true when that renders as enable_thinking=true (or the template has no
// switch), false when it renders as false. llama.cpp's chat layer always defines it, so
// rigllama's AUTO passes this value to get the template's own default. Decided on a few
// probe conversations; a template that renders "undefined" unlike both is taken as true,
// as llama-server would.
bool thinking_default(const std::string & source) {
    const common_chat_template tmpl(source, "", "");
    const json probes = json::array({
        json::array({ { { "role", "user" }, { "content", "Hello" } } }),
        json::array({ { { "role", "system" }, { "content", "Be brief." } },
                      { { "role", "user" }, { "content", "Hello" } },
                      { { "role", "assistant" }, { "content", "Hi." } },
                      { { "role", "user" }, { "content", "Bye" } } }),
    });
    bool seen_off = false;
    for (const auto & messages : probes) {
        const auto unset = render_plain(tmpl, messages, nullptr);
        const auto on    = render_plain(tmpl, messages, true);
        const auto off   = render_plain(tmpl, messages, false);
        if (!unset || !on || !off) {
            continue;
        }
        if (*unset == *on) {
            return true;  // undefined behaves as true, or there is no switch
        }
        if (*unset == *off) {
            seen_off = true;
        } else {
            return true;
        }
    }
    return !seen_off;
}

}  // namespace

struct rl_chat {
    common_chat_templates_ptr templates;
};

struct rl_chat_parser {
    common_chat_parser_params params;
};

extern "C" {

// For other users of `common` (its fitting logs through the same logger).
void rl_silence_common_log(void) {
    silence_common_log();
}

void rl_chat_string_free(char * s) {
    std::free(s);
}

// The model's chat templates (`template_override` NULL or "": the GGUF's own, with its
// `tool_use` variant). `model` may be NULL with a template given (no BOS/EOS then). NULL with
// *err set when the template does not parse.
rl_chat * rl_chat_init(const llama_model * model, const char * template_override, char ** err) {
    silence_common_log();
    if (!model && (!template_override || !*template_override)) {
        set_error(err, "no model and no template");  // common would assert
        return nullptr;
    }
    const std::string override_src = template_override ? template_override : "";
    return guarded<rl_chat *>(err, nullptr, [&] {
        try {
            return new rl_chat{ common_chat_templates_init(model, override_src) };
        } catch (const std::exception &) {
            // common_chat_templates_init rethrows a parse error by value (`throw e;`), which
            // leaves only "std::exception": parse the same text again to keep the parser's
            // own message (line, column and the offending text).
            std::string src = override_src;
            if (src.empty() && model) {
                const char * own = llama_model_chat_template(model, nullptr);
                src = own ? own : "";
            }
            common_chat_template reparsed(src, "", "");  // throws the real reason
            throw;
        }
    });
}

void rl_chat_free(rl_chat * chat) {
    delete chat;
}

// {"source": "...", "tool_use_source": "..." | "", "caps": {"supports_tool_calls": true, ...},
//  "thinking_default": bool}
char * rl_chat_info(const rl_chat * chat, char ** err) {
    return guarded(err, [&] {
        json caps = json::object();
        for (const auto & [name, value] : common_chat_templates_get_caps(chat->templates.get())) {
            caps[name] = value;
        }
        json info = {
            { "source", common_chat_templates_source(chat->templates.get()) },
            { "tool_use_source", common_chat_templates_source(chat->templates.get(), "tool_use") },
            { "caps", caps },
            { "thinking_default", thinking_default(common_chat_templates_source(chat->templates.get())) },
        };
        return dup_string(info.dump());
    });
}

// inputs: {"messages": [OpenAI messages], "tools": [...] | null, "tool_choice": "auto" |
// "required" | "none", "json_schema": "..." | null, "grammar": "..." | null,
// "add_generation_prompt": bool, "enable_thinking": bool, "parallel_tool_calls": bool}
// returns: common_chat_params as JSON (prompt, grammar, lazy triggers, parser, ...).
char * rl_chat_apply(const rl_chat * chat, const char * inputs_json, char ** err) {
    return guarded(err, [&] {
        const json in = json::parse(inputs_json);
        common_chat_templates_inputs inputs;
        inputs.messages = common_chat_msgs_parse_oaicompat(in.at("messages"));
        if (in.contains("tools") && !in.at("tools").is_null()) {
            inputs.tools = common_chat_tools_parse_oaicompat(in.at("tools"));
        }
        inputs.tool_choice           = parse_tool_choice(in.value("tool_choice", "auto"));
        inputs.json_schema           = in.value("json_schema", "");
        inputs.grammar               = in.value("grammar", "");
        inputs.add_generation_prompt = in.value("add_generation_prompt", true);
        inputs.enable_thinking       = in.value("enable_thinking", true);
        inputs.parallel_tool_calls   = in.value("parallel_tool_calls", true);
        inputs.reasoning_format      = COMMON_REASONING_FORMAT_AUTO;
        inputs.use_jinja             = true;

        const common_chat_params params = common_chat_templates_apply(chat->templates.get(), inputs);
        json triggers = json::array();
        for (const auto & t : params.grammar_triggers) {
            triggers.push_back({ { "type", static_cast<int>(t.type) }, { "value", t.value }, { "token", t.token } });
        }
        json out = {
            { "format", static_cast<int>(params.format) },
            { "prompt", params.prompt },
            { "grammar", params.grammar },
            { "grammar_lazy", params.grammar_lazy },
            { "grammar_triggers", triggers },
            { "generation_prompt", params.generation_prompt },
            { "supports_thinking", params.supports_thinking },
            { "thinking_start_tag", params.thinking_start_tag },
            { "thinking_end_tags", params.thinking_end_tags },
            { "preserved_tokens", params.preserved_tokens },
            { "additional_stops", params.additional_stops },
            { "parser", params.parser },
        };
        return dup_string(out.dump());
    });
}

// A parser for the replies of one request, from rl_chat_apply's output.
rl_chat_parser * rl_chat_parser_new(const char * params_json, char ** err) {
    return guarded<rl_chat_parser *>(err, nullptr, [&] {
        const json p = json::parse(params_json);
        auto parser = std::make_unique<rl_chat_parser>();
        parser->params.format            = static_cast<common_chat_format>(p.at("format").get<int>());
        parser->params.generation_prompt = p.value("generation_prompt", "");
        parser->params.reasoning_format  = COMMON_REASONING_FORMAT_AUTO;
        parser->params.parse_tool_calls  = true;
        const std::string arena = p.value("parser", "");
        if (!arena.empty()) {
            parser->params.parser.load(arena);
        }
        return parser.release();
    });
}

void rl_chat_parser_free(rl_chat_parser * parser) {
    delete parser;
}

// The assistant message in `text` (the reply so far when `is_partial`) as OpenAI JSON:
// {"role":"assistant","content":...,"reasoning_content":...,"tool_calls":[...]}.
char * rl_chat_parse(const rl_chat_parser * parser, const char * text, size_t len, int is_partial, char ** err) {
    return guarded(err, [&] {
        const common_chat_msg msg = common_chat_parse(std::string(text, len), is_partial != 0, parser->params);
        return dup_string(msg.to_json_oaicompat().dump());
    });
}

// JSON Schema to GBNF; NULL with the converter's reason on error.
char * rl_json_schema_to_grammar(const char * schema_json, char ** err) {
    silence_common_log();
    return guarded(err, [&] { return dup_string(json_schema_to_grammar(json::parse(schema_json))); });
}

// Checks GBNF the way llama.cpp's grammar sampler will load it, and says why it would be
// refused (llama.cpp itself only prints the reason to stderr). 1 = usable.
int rl_grammar_check(const char * gbnf, const char * root, char ** err) {
    return guarded<int>(err, 0, [&] {
        llama_grammar_parser parser;
        // parse() prints to stderr on failure, so its loop is repeated here to keep the reason.
        const char * pos = gbnf;
        auto skip_space = [](const char * p) {
            for (;;) {
                while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
                    p++;
                }
                if (*p != '#') {
                    return p;
                }
                while (*p && *p != '\n') {
                    p++;
                }
            }
        };
        pos = skip_space(pos);
        while (*pos) {
            pos = parser.parse_rule(pos);
        }
        for (const auto & rule : parser.rules) {
            if (rule.empty()) {
                throw std::runtime_error("a rule is used but never defined");
            }
            for (const auto & elem : rule) {
                if (elem.type == LLAMA_GRETYPE_RULE_REF &&
                    (elem.value >= parser.rules.size() || parser.rules[elem.value].empty())) {
                    for (const auto & kv : parser.symbol_ids) {
                        if (kv.second == elem.value) {
                            throw std::runtime_error("undefined rule '" + kv.first + "'");
                        }
                    }
                    throw std::runtime_error("undefined rule");
                }
            }
        }
        if (parser.rules.empty()) {
            throw std::runtime_error("the grammar has no rules");
        }
        if (parser.symbol_ids.find(root) == parser.symbol_ids.end()) {
            throw std::runtime_error(std::string("the grammar has no '") + root + "' rule");
        }
        return 1;
    });
}

// common's reasoning-budget sampler (what llama-server's --reasoning-budget makes), from
// {"start": [ids], "ends": [[ids], ...], "forced": [ids], "budget": n}; free it with
// llama_sampler_free.
llama_sampler * rl_reasoning_budget_new(const llama_vocab * vocab, const char * spec_json, char ** err) {
    return guarded<llama_sampler *>(err, nullptr, [&] {
        const json spec = json::parse(spec_json);
        // common_json instantiates get<> for plain types only: read the arrays item by item.
        const auto ids = [](const json & list) {
            llama_tokens out;
            for (const auto & id : list) {
                out.push_back(id.get<int32_t>());
            }
            return out;
        };
        std::vector<llama_tokens> ends;
        for (const auto & end : spec.at("ends")) {
            ends.push_back(ids(end));
        }
        return common_reasoning_budget_init(vocab, { ids(spec.at("start")) }, ends, ids(spec.at("forced")),
                                            spec.at("budget").get<int32_t>());
    });
}

// 1 while the budget sampler forces its end sequence.
int rl_reasoning_budget_forcing(const llama_sampler * smpl) {
    return common_reasoning_budget_get_state(smpl) == REASONING_BUDGET_FORCING ? 1 : 0;
}

}  // extern "C"
