// Package rigllama runs local GGUF language models through llama.cpp, with cgo over the C
// library rigllama (rigllama.h, librigllama.so).
//
//	engine, err := rigllama.Open("model.gguf")
//	if err != nil { ... }
//	defer engine.Close()
//	request := rigllama.NewRequest("The sea is")
//	usage, err := engine.Stream(ctx, request, func(piece string) bool { fmt.Print(piece); return true })
//
// The C library is found with pkg-config (#cgo pkg-config: rigllama): after `make install`
// into /usr/local nothing is needed; for another prefix or an unpacked release archive, set
// PKG_CONFIG_PATH=<prefix>/lib/pkgconfig. Without pkg-config, build with the tag
// rigllama_no_pkgconfig and give cgo the paths yourself:
//
//	CGO_CFLAGS="-I<prefix>/include" CGO_LDFLAGS="-L<prefix>/lib" go build -tags rigllama_no_pkgconfig
//
// At run time the program needs librigllama.so where the dynamic linker looks: a system
// directory, LD_LIBRARY_PATH, or an rpath (CGO_LDFLAGS="-Wl,-rpath,<prefix>/lib").
//
// Errors are *Error values carrying the library's status and message; errors.Is(err,
// StatusCancelled) and the other Status values test the status. A call cancelled through its
// context.Context also matches context.Canceled or context.DeadlineExceeded.
//
// Every call that returns a status runs with runtime.LockOSThread held until the message of
// rigllama_last_error() (which is per OS thread) has been read, so a failed call's error
// always carries its own message.
//
// Token ids (v0.3): Tokenize and Detokenize turn text into the model's ids and back, and
// Request.PromptTokens sends ids as the prompt:
//
//	ids, err := engine.Tokenize("The sea is", rigllama.TokenizeRawPrompt) // what a raw prompt evaluates
//	text, err := engine.Detokenize(ids, rigllama.TokenizeRawPrompt)       // "The sea is" again
//	request := rigllama.NewRequest("")
//	request.PromptTokens = ids                                            // sent verbatim
//
// Fill-in-the-middle and reranking (v0.3): Request.Suffix is the text after a gap, Prompt the
// text before it, and the reply the middle (a model with FIM tokens); Rerank scores documents
// for a query (a reranker model):
//
//	request := rigllama.NewRequest("def add(a, b):\n    ")
//	request.Suffix, request.Raw = "\n\nprint(add(1, 2))\n", true
//	middle, usage, err := coder.Complete(request)
//	scores, err := reranker.Rerank("what is a cat?", []string{"A cat purrs.", "Granite is a rock."})
//
// Adaptive-p sampling and control vectors (v0.3): Request.AdaptiveTarget (negative: off, the
// default) makes the draw favour tokens near that probability; SetControlVector steers the
// model with a cvector-generator GGUF until ClearControlVector:
//
//	request.Temperature, request.AdaptiveTarget = 1, 0.3
//	err := engine.SetControlVector("vector.gguf", 0.8, 0, 0) // every layer; 10, 14: layers 10..14
//	err = engine.ClearControlVector()
//
// Reasoning budget (v0.3): Request.ReasoningBudget caps the tokens a thinking model (Qwen3,
// DeepSeek-R1) thinks for before its answer; NewRequest's -1 is unlimited, 0 no thinking:
//
//	request.ReasoningBudget = 256
//
// Per-request LoRA (v0.3): Request.Lora gives one request its own adapters (ids from AddLora)
// at its own scales, every other loaded adapter off for it; nil (NewRequest's) keeps the
// engine-wide adapters, and an empty non-nil slice means no adapter at all:
//
//	style, err := engine.AddLora("style.gguf", 0) // off engine-wide
//	request.Lora = []rigllama.LoraScale{{ID: style, Scale: 1}} // on for this request alone
//	request.Lora = []rigllama.LoraScale{}                      // the base model, whatever is applied
//
// Devices (v0.3): ListDevices says which devices the library can use here (the CPU always,
// named "CPU"), Options.Devices puts the offloaded layers on the ones named (an empty non-nil
// slice: the CPU only), and Estimate says what an engine with some options would allocate on
// each device without loading the weights, so a game can pick the largest model that fits:
//
//	devices, err := rigllama.ListDevices()                               // [{CPU ... cpu 25276182528 ...}]
//	planned, err := rigllama.Estimate("model.gguf", rigllama.Options{NCtx: 8192})
//	fmt.Println(planned.Total.ModelBytes + planned.Total.KVCacheBytes + planned.Total.ComputeBytes)
//	engine, err := rigllama.OpenWith("model.gguf", rigllama.Options{Devices: []string{"Vulkan0"}})
package rigllama

/*
#include <stdint.h>
#include <stdlib.h>
#include "rigllama.h"

// Defined in callback.go (exported from Go). A plain uintptr_t carries the cgo.Handle, so no
// Go pointer ever crosses into C.
extern int32_t goTokenCallback(uintptr_t handle, char *piece, size_t piece_len);

static int32_t rigllama_go_on_token(void *user_data, const char *piece, size_t piece_len) {
	return goTokenCallback((uintptr_t)user_data, (char *)piece, piece_len);
}

static rigllama_status rigllama_go_stream(rigllama_engine *engine, const rigllama_request *request,
                                          uintptr_t handle, rigllama_usage *usage) {
	return rigllama_engine_stream(engine, request, rigllama_go_on_token, (void *)handle, usage);
}
*/
import "C"

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"runtime/cgo"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Status is a rigllama_status.
type Status int32

const (
	StatusOK              Status = C.RIGLLAMA_STATUS_OK
	StatusNullArgument    Status = C.RIGLLAMA_STATUS_NULL_ARGUMENT
	StatusInvalidArgument Status = C.RIGLLAMA_STATUS_INVALID_ARGUMENT
	StatusModelLoadFailed Status = C.RIGLLAMA_STATUS_MODEL_LOAD_FAILED
	StatusContextOverflow Status = C.RIGLLAMA_STATUS_CONTEXT_OVERFLOW
	StatusCancelled       Status = C.RIGLLAMA_STATUS_CANCELLED
	StatusBusy            Status = C.RIGLLAMA_STATUS_BUSY
	StatusShutDown        Status = C.RIGLLAMA_STATUS_SHUT_DOWN
	StatusInternal        Status = C.RIGLLAMA_STATUS_INTERNAL
)

func (s Status) String() string { return C.GoString(C.rigllama_status_str(C.rigllama_status(s))) }

// Error makes a Status an error, so that errors.Is(err, StatusCancelled) tests a failed call's
// status (as errors.Is(err, fs.ErrNotExist) does for files). It is String's text.
func (s Status) Error() string { return s.String() }

// Error is a failed call: its status and the library's message for it.
type Error struct {
	Status  Status
	Message string
	// cause is the context's error when a context cancelled the call.
	cause error
}

func (e *Error) Error() string { return fmt.Sprintf("rigllama: %s: %s", e.Status.String(), e.Message) }

// Is reports whether target is this error's Status.
func (e *Error) Is(target error) bool {
	status, ok := target.(Status)
	return ok && status == e.Status
}

// Unwrap returns context.Canceled or context.DeadlineExceeded when the call's context ended
// it, else nil.
func (e *Error) Unwrap() error { return e.cause }

// call runs f and, if it failed, reads the last error on the same OS thread.
func call(f func() C.rigllama_status) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if status := Status(f()); status != StatusOK {
		return &Error{Status: status, Message: C.GoString(C.rigllama_last_error())}
	}
	return nil
}

// Version is the library's version, e.g. "0.1.0".
func Version() string { return C.GoString(C.rigllama_version()) }

// FinishReason says why generation ended.
type FinishReason int32

const (
	FinishStop     FinishReason = C.RIGLLAMA_FINISH_REASON_STOP
	FinishLength   FinishReason = C.RIGLLAMA_FINISH_REASON_LENGTH
	FinishCallback FinishReason = C.RIGLLAMA_FINISH_REASON_CALLBACK
	// v0.2: the reply ended in tool calls (see Engine.Chat and EventToolCall).
	FinishToolCalls FinishReason = C.RIGLLAMA_FINISH_REASON_TOOL_CALLS
)

// Usage is what a request cost and why it ended.
type Usage struct {
	FinishReason       FinishReason
	PromptTokens       uint32
	CachedPromptTokens uint32
	CompletionTokens   uint32
	Seed               uint32
	PromptMs           float64
	GenerationMs       float64
	DroppedTokens      uint32 // v0.2: oldest turns dropped to make room (ContextOverflowShift)
	DraftedTokens      uint32 // v0.2: guessed by prompt-lookup speculation (Request.DraftMax) and evaluated
	AcceptedTokens     uint32 // v0.2: of those, the ones the sampler confirmed
	ImageTokens        uint32 // v0.2: of PromptTokens, those standing for images (Options.MmprojPath)
}

func usageFromC(u *C.rigllama_usage) Usage {
	return Usage{
		FinishReason:       FinishReason(u.finish_reason),
		PromptTokens:       uint32(u.prompt_tokens),
		CachedPromptTokens: uint32(u.cached_prompt_tokens),
		CompletionTokens:   uint32(u.completion_tokens),
		Seed:               uint32(u.seed),
		PromptMs:           float64(u.prompt_ms),
		GenerationMs:       float64(u.generation_ms),
		DroppedTokens:      uint32(u.dropped_tokens),
		DraftedTokens:      uint32(u.drafted_tokens),
		AcceptedTokens:     uint32(u.accepted_tokens),
		ImageTokens:        uint32(u.image_tokens),
	}
}

func newUsage() *C.rigllama_usage {
	var u C.rigllama_usage
	C.rigllama_usage_init(&u, C.sizeof_rigllama_usage)
	return &u
}

// ToolChoice says whether the model may call a request's tools.
type ToolChoice int32

const (
	ToolChoiceAuto     ToolChoice = C.RIGLLAMA_TOOL_CHOICE_AUTO     // the model decides
	ToolChoiceNone     ToolChoice = C.RIGLLAMA_TOOL_CHOICE_NONE     // the tools are not offered
	ToolChoiceRequired ToolChoice = C.RIGLLAMA_TOOL_CHOICE_REQUIRED // at least one call, valid against its schema
)

// Reasoning is the chat template's thinking switch.
type Reasoning int32

const (
	ReasoningAuto Reasoning = C.RIGLLAMA_REASONING_AUTO // as the template defaults
	ReasoningOff  Reasoning = C.RIGLLAMA_REASONING_OFF  // thinking disabled where the template supports it
	ReasoningOn   Reasoning = C.RIGLLAMA_REASONING_ON
)

// Mirostat is Request.Mirostat (v0.2): it keeps the text's surprise near MirostatTau and
// replaces top-k, typical-p, top-p, min-p and XTC.
type Mirostat int32

const (
	MirostatOff Mirostat = C.RIGLLAMA_MIROSTAT_OFF
	MirostatV1  Mirostat = C.RIGLLAMA_MIROSTAT_V1
	MirostatV2  Mirostat = C.RIGLLAMA_MIROSTAT_V2
)

// Request is one generation request. Start from NewRequest, which fills in the library's
// defaults, so that zero values (Temperature 0 = greedy) mean what they say.
type Request struct {
	Prompt       string
	SystemPrompt string
	// A conversation: [{"role":"user","content":"..."}, ...]; v0.2: also Chat's replies as they
	// are and {"role":"tool","tool_call_id":"...","content":"..."} results.
	MessagesJSON string
	Raw          bool // send Prompt verbatim (text completion) instead of as a chat turn
	MaxTokens    uint32
	Temperature  float32
	TopP         float32
	TopK         int32
	MinP         float32
	Seed         uint32
	// v0.2: higher runs first (0 by default). On an engine with NSeq > 1, a waiting request of
	// higher priority pauses the lowest running one, which resumes after, losing nothing.
	Priority int32
	// v0.2 structured output (empty strings: unused; ToolChoice and Reasoning default to Auto).
	// Grammar is GBNF the reply must match; JSONSchema makes the reply one JSON value valid
	// against it; ToolsJSON is OpenAI's tools array, whose calls come back from Chat as
	// tool_calls (ToolChoiceRequired: at least one, valid against its schema).
	Grammar    string
	JSONSchema string
	ToolsJSON  string
	ToolChoice ToolChoice
	Reasoning  Reasoning
	// v0.2 sampling (NewRequest fills in the library's defaults; rigllama.h has the ranges).
	// PenaltyLastN is the window of the repeat, presence and frequency penalties (-1: the whole
	// context); DRY penalises repeating earlier text; XTC removes the likeliest candidates.
	PresencePenalty  float32
	FrequencyPenalty float32
	PenaltyLastN     int32
	DryMultiplier    float32
	DryBase          float32
	DryAllowedLength int32
	DryPenaltyLastN  int32
	XTCProbability   float32
	XTCThreshold     float32
	TypicalP         float32
	TopNSigma        float32
	Mirostat         Mirostat
	MirostatTau      float32
	MirostatEta      float32
	// v0.2: 1..20 makes a job deliver EventLogprobs events, with this many alternatives per
	// token (0: none).
	NLogprobs uint32
	// v0.2: token ids to biases, {"15043": -1.5}, or [[15043, -1.5], ["Paris", false]] (a token
	// id or a text, and a bias or false to ban it). Empty: none.
	LogitBiasJSON string
	// v0.2: texts that end a repetition for DRY (nil: llama.cpp's "\n", ":", "\"", "*").
	DrySequenceBreakers []string
	// v0.2: prompt-lookup speculative decoding: up to this many tokens guessed from the
	// conversation's earlier text are verified in one decode (0: off, the default; at most 64;
	// 8 is what the bench measures). Usage.DraftedTokens and AcceptedTokens report what it did.
	// Near ties can resolve differently from plain decoding (a batch rounds differently).
	DraftMax uint32
	// v0.3: the prompt as token ids (Engine.Tokenize), sent verbatim: nothing is added, so
	// tokenize with TokenizeAddSpecial (in TokenizeRawPrompt) for the BOS a raw prompt gets.
	// Leave Prompt, SystemPrompt and MessagesJSON empty; Raw does not matter. nil: unused. An id
	// outside the vocabulary fails with StatusInvalidArgument naming its index and value.
	PromptTokens []int32
	// v0.3: fill-in-the-middle: Suffix is the text after the gap and Prompt the text before it
	// (either may be empty, not both), with Raw true; the reply is the middle. The prompt is
	// laid out with the vocabulary's FIM tokens as llama-server lays out an /infill prompt;
	// text that does not fit one batch is cut (Usage.DroppedTokens counts the cut). A model
	// whose vocabulary has no FIM tokens fails with StatusInvalidArgument, as does a Suffix
	// without Raw. Empty: unused, unless Infill is set.
	Suffix string
	// v0.3: Infill makes the request fill-in-the-middle even with Suffix empty (a gap at the end
	// of the text); a non-empty Suffix implies it. With it, an empty Prompt is sent as "" (the
	// text before the gap), not left unset.
	Infill bool
	// v0.3: adaptive-p (llama.cpp's adaptive_p sampler): the draw favours tokens near
	// AdaptiveTarget's probability, adapting to what was chosen; it ends the chain in place of
	// the plain draw. In [0, 1]; negative: off (NewRequest's -1). Not with Mirostat; no effect at
	// Temperature 0. AdaptiveDecay: it remembers about 1 / (1 - decay) tokens; [0, 0.99], 0.90
	// by default.
	AdaptiveTarget float32
	AdaptiveDecay  float32
	// v0.3: tokens the reply may think for: -1 = unlimited (NewRequest's default), 0 = no
	// thinking, N. When the template's thinking block (Qwen3's and DeepSeek-R1's <think>, ...)
	// reaches it, the engine writes the block's end tag, as llama.cpp's reasoning-budget sampler
	// does, and the answer follows. A template without a thinking block has nothing to limit;
	// with Grammar or JSONSchema the budget is not applied. Below -1 fails with
	// StatusInvalidArgument. (A Request not made by NewRequest has 0 here: no thinking.)
	ReasoningBudget int32
	// v0.3: this request's own LoRA adapters, in place of the engine-wide ones: exactly these
	// (ids from Engine.AddLora) at these scales (0: no effect, 1: as trained), every other
	// loaded adapter off for this request; the engine-wide scales are left as they are. nil
	// (the default) keeps the engine-wide adapters at their engine-wide scales; an empty
	// non-nil slice ([]LoraScale{}) is no adapter at all, the base model. An id not loaded, an
	// id given twice or a scale outside ±100 fails with StatusInvalidArgument naming it
	// ("lora_ids[0] = 77"); at most 64. Requests with different sets never share a decode
	// (they take turns), and a cached prefix is reused only by requests with the same set.
	Lora []LoraScale
}

// LoraScale (v0.3) is one adapter of a request's own LoRA set (Request.Lora): an id from
// Engine.AddLora and the scale it has for that request.
type LoraScale struct {
	ID    uint32
	Scale float32
}

// NewRequest returns a request for prompt with the defaults of rigllama_request_init.
func NewRequest(prompt string) Request {
	var c C.rigllama_request
	C.rigllama_request_init(&c, C.sizeof_rigllama_request)
	return Request{
		Prompt:      prompt,
		MaxTokens:   uint32(c.max_tokens),
		Temperature: float32(c.temperature),
		TopP:        float32(c.top_p),
		TopK:        int32(c.top_k),
		MinP:        float32(c.min_p),
		Seed:        uint32(c.seed),
		ToolChoice:  ToolChoice(c.tool_choice),
		Reasoning:   Reasoning(c.reasoning),

		PresencePenalty:  float32(c.presence_penalty),
		FrequencyPenalty: float32(c.frequency_penalty),
		PenaltyLastN:     int32(c.penalty_last_n),
		DryMultiplier:    float32(c.dry_multiplier),
		DryBase:          float32(c.dry_base),
		DryAllowedLength: int32(c.dry_allowed_length),
		DryPenaltyLastN:  int32(c.dry_penalty_last_n),
		XTCProbability:   float32(c.xtc_probability),
		XTCThreshold:     float32(c.xtc_threshold),
		TypicalP:         float32(c.typical_p),
		TopNSigma:        float32(c.top_n_sigma),
		Mirostat:         Mirostat(c.mirostat),
		MirostatTau:      float32(c.mirostat_tau),
		MirostatEta:      float32(c.mirostat_eta),
		NLogprobs:        uint32(c.n_logprobs),
		DraftMax:         uint32(c.draft_max),
		AdaptiveTarget:   float32(c.adaptive_target),
		AdaptiveDecay:    float32(c.adaptive_decay),
		ReasoningBudget:  int32(c.reasoning_budget),
	}
}

// toC builds the C struct; the strings live in C memory until free is called.
func (r Request) toC() (c C.rigllama_request, free func()) {
	C.rigllama_request_init(&c, C.sizeof_rigllama_request)
	c.max_tokens = C.uint32_t(r.MaxTokens)
	c.temperature = C.float(r.Temperature)
	c.top_p = C.float(r.TopP)
	c.top_k = C.int32_t(r.TopK)
	c.min_p = C.float(r.MinP)
	c.seed = C.uint32_t(r.Seed)
	c.priority = C.int32_t(r.Priority)
	c.tool_choice = C.int32_t(r.ToolChoice)
	c.reasoning = C.int32_t(r.Reasoning)
	c.presence_penalty = C.float(r.PresencePenalty)
	c.frequency_penalty = C.float(r.FrequencyPenalty)
	c.penalty_last_n = C.int32_t(r.PenaltyLastN)
	c.dry_multiplier = C.float(r.DryMultiplier)
	c.dry_base = C.float(r.DryBase)
	c.dry_allowed_length = C.int32_t(r.DryAllowedLength)
	c.dry_penalty_last_n = C.int32_t(r.DryPenaltyLastN)
	c.xtc_probability = C.float(r.XTCProbability)
	c.xtc_threshold = C.float(r.XTCThreshold)
	c.typical_p = C.float(r.TypicalP)
	c.top_n_sigma = C.float(r.TopNSigma)
	c.mirostat = C.int32_t(r.Mirostat)
	c.mirostat_tau = C.float(r.MirostatTau)
	c.mirostat_eta = C.float(r.MirostatEta)
	c.n_logprobs = C.uint32_t(r.NLogprobs)
	c.draft_max = C.uint32_t(r.DraftMax)
	c.adaptive_target = C.float(r.AdaptiveTarget)
	c.adaptive_decay = C.float(r.AdaptiveDecay)
	c.reasoning_budget = C.int32_t(r.ReasoningBudget)
	if r.Raw {
		c.raw_prompt = 1
	}
	var owned []*C.char
	infill := r.Infill || r.Suffix != ""
	if r.Prompt != "" || infill {
		c.prompt = C.CString(r.Prompt)
		owned = append(owned, c.prompt)
	}
	if infill {
		c.suffix = C.CString(r.Suffix)
		owned = append(owned, c.suffix)
	}
	if r.SystemPrompt != "" {
		c.system_prompt = C.CString(r.SystemPrompt)
		owned = append(owned, c.system_prompt)
	}
	if r.MessagesJSON != "" {
		c.messages_json = C.CString(r.MessagesJSON)
		owned = append(owned, c.messages_json)
	}
	if r.Grammar != "" {
		c.grammar = C.CString(r.Grammar)
		owned = append(owned, c.grammar)
	}
	if r.JSONSchema != "" {
		c.json_schema = C.CString(r.JSONSchema)
		owned = append(owned, c.json_schema)
	}
	if r.ToolsJSON != "" {
		c.tools_json = C.CString(r.ToolsJSON)
		owned = append(owned, c.tools_json)
	}
	if r.LogitBiasJSON != "" {
		c.logit_bias_json = C.CString(r.LogitBiasJSON)
		owned = append(owned, c.logit_bias_json)
	}
	if r.DrySequenceBreakers != nil {
		// The array is in C memory too: C may not be handed Go memory holding pointers.
		n := len(r.DrySequenceBreakers)
		array := (**C.char)(C.malloc(C.size_t(n+1) * C.size_t(unsafe.Sizeof((*C.char)(nil)))))
		owned = append(owned, (*C.char)(unsafe.Pointer(array)))
		breakers := unsafe.Slice(array, n)
		for i, text := range r.DrySequenceBreakers {
			breakers[i] = C.CString(text)
			owned = append(owned, breakers[i])
		}
		c.dry_sequence_breakers = array
		c.n_dry_sequence_breakers = C.size_t(n)
	}
	if r.PromptTokens != nil {
		// C memory as well; one entry at least, so that an empty slice reaches C as set (and is
		// refused there, naming the count) rather than as NULL.
		n := len(r.PromptTokens)
		array := (*C.int32_t)(C.malloc(C.size_t(n+1) * C.size_t(unsafe.Sizeof(C.int32_t(0)))))
		owned = append(owned, (*C.char)(unsafe.Pointer(array)))
		ids := unsafe.Slice(array, n)
		for i, id := range r.PromptTokens {
			ids[i] = C.int32_t(id)
		}
		c.prompt_tokens = array
		c.n_prompt_tokens = C.size_t(n)
	}
	if r.Lora != nil {
		// C memory (cgo's pointer rules), one entry at least, so that an empty slice reaches C
		// as set (no adapter at all) rather than as NULL (the engine-wide adapters).
		n := len(r.Lora)
		ids := (*C.uint32_t)(C.malloc(C.size_t(n+1) * C.size_t(unsafe.Sizeof(C.uint32_t(0)))))
		owned = append(owned, (*C.char)(unsafe.Pointer(ids)))
		c.lora_ids = ids
		c.n_loras = C.size_t(n)
		if n > 0 {
			scales := (*C.float)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof(C.float(0)))))
			owned = append(owned, (*C.char)(unsafe.Pointer(scales)))
			idSlice, scaleSlice := unsafe.Slice(ids, n), unsafe.Slice(scales, n)
			for i, adapter := range r.Lora {
				idSlice[i] = C.uint32_t(adapter.ID)
				scaleSlice[i] = C.float(adapter.Scale)
			}
			c.lora_scales = scales
		}
	}
	return c, func() {
		for _, p := range owned {
			C.free(unsafe.Pointer(p))
		}
	}
}

// Engine is one loaded model with its worker thread. Close it when done.
type Engine struct {
	ptr *C.rigllama_engine
}

// ContextOverflow says what happens when a conversation outgrows the context window.
type ContextOverflow int32

const (
	ContextOverflowFail  ContextOverflow = C.RIGLLAMA_CONTEXT_OVERFLOW_FAIL  // CONTEXT_OVERFLOW (v0.1 behaviour)
	ContextOverflowShift ContextOverflow = C.RIGLLAMA_CONTEXT_OVERFLOW_SHIFT // drop the oldest turns, go on
)

// KVType is a KV cache data type (v0.2, Options.TypeK and TypeV): quantized types take less
// memory per token; a quantized TypeV needs FlashAttentionAuto or FlashAttentionOn.
type KVType int32

const (
	KVTypeF16    KVType = C.RIGLLAMA_KV_TYPE_F16 // the default
	KVTypeF32    KVType = C.RIGLLAMA_KV_TYPE_F32
	KVTypeBF16   KVType = C.RIGLLAMA_KV_TYPE_BF16
	KVTypeQ8_0   KVType = C.RIGLLAMA_KV_TYPE_Q8_0
	KVTypeQ4_0   KVType = C.RIGLLAMA_KV_TYPE_Q4_0
	KVTypeQ4_1   KVType = C.RIGLLAMA_KV_TYPE_Q4_1
	KVTypeQ5_0   KVType = C.RIGLLAMA_KV_TYPE_Q5_0
	KVTypeQ5_1   KVType = C.RIGLLAMA_KV_TYPE_Q5_1
	KVTypeIQ4_NL KVType = C.RIGLLAMA_KV_TYPE_IQ4_NL
)

// FlashAttention is Options.FlashAttention (v0.2).
type FlashAttention int32

const (
	FlashAttentionAuto FlashAttention = C.RIGLLAMA_FLASH_ATTENTION_AUTO // llama.cpp decides per device
	FlashAttentionOff  FlashAttention = C.RIGLLAMA_FLASH_ATTENTION_OFF
	FlashAttentionOn   FlashAttention = C.RIGLLAMA_FLASH_ATTENTION_ON
)

// ThreadPriority is Options.ThreadPriority (v0.3): how the engine's threads are scheduled
// beside the host's.
type ThreadPriority int32

const (
	ThreadPriorityNormal ThreadPriority = C.RIGLLAMA_THREAD_PRIORITY_NORMAL // as the host's threads (the default)
	ThreadPriorityLow    ThreadPriority = C.RIGLLAMA_THREAD_PRIORITY_LOW    // yield to the host's: a game keeps its frames
)

// Options are the engine options that differ from the library's defaults (zero: default).
type Options struct {
	NCtx            uint32
	ContextOverflow ContextOverflow
	// NSeq is how many requests run at once, advancing together (1..64; 0: the default, 1).
	NSeq uint32
	// v0.2: the KV cache's data types (zero: F16) and flash attention (zero: auto).
	TypeK          KVType
	TypeV          KVType
	FlashAttention FlashAttention
	// v0.2: Fit lets llama.cpp's fitting choose the GPU layers and, if the model and context
	// would not leave FitMarginsMiB free (one value for every device, or one per device; nil:
	// 1024 each), a smaller context, never below FitMinCtx (0: the default, 4096).
	Fit           bool
	FitMinCtx     uint32
	FitMarginsMiB []uint32
	// v0.2: state checkpoints, for recurrent and hybrid models (others ignore them): copies of
	// the state at the end of each prompt and reply, which a request sharing a prefix with one
	// resumes from. At most MaxCheckpoints are kept (0: the default, 32), holding at most
	// MaxCheckpointBytes together (0: the default, 512 MiB); NoCheckpoints keeps none (C's
	// max_checkpoints 0).
	MaxCheckpointBytes uint64
	MaxCheckpoints     uint32
	NoCheckpoints      bool
	// v0.2: the multimodal projector (mmproj GGUF) made for this model, loaded with it, so
	// that images in a Chat's messages (OpenAI image_url parts) reach it ("": none, C's NULL).
	// Needs a library built with the cargo feature mtmd; otherwise OpenWith fails with
	// StatusInvalidArgument before any model loads.
	MmprojPath string
	// v0.3: ThreadPriorityLow makes the engine's threads yield to the host's (zero: normal).
	// rigllama_engine_describe reports "thread_priority" and "thread_priority_applied".
	ThreadPriority ThreadPriority
	// v0.3: llama.cpp rpc-servers ("host:port,host:port"; "": none) that take the offloaded
	// layers; needs a library built with the cargo feature rpc. Private networks only.
	RPCServers string
	// v0.3: a model inside a larger file (an asset archive): where its GGUF starts and its
	// length (0: to the end of the file); zero: the file is the GGUF.
	ModelOffset uint64
	ModelSize   uint64
	// v0.3: NoRepack is llama.cpp's --no-repack (CPU weights not repacked for its fastest
	// kernels: the same arithmetic as an rpc-server).
	NoRepack bool
	// v0.3: Devices are the devices that take the offloaded layers (llama.cpp's --device), by
	// the names ListDevices reports ("Vulkan0", "CUDA1"; "CPU" is the CPU), in that order. nil
	// (the default) is llama.cpp's choice: every GPU, or the CPU when a GPU cannot start (the
	// engine's Describe says why in "gpu_fallback"); an empty non-nil slice ([]string{}) is the
	// CPU only. A name that is not there fails with StatusInvalidArgument naming it and the
	// devices there are; a named device that cannot take the model, with StatusModelLoadFailed.
	Devices []string
}

// DefaultOptions returns the library's defaults (rigllama_engine_options_init) as Options;
// OpenWith(path, DefaultOptions()) opens the engine Open(path) does.
func DefaultOptions() (Options, error) {
	var options C.rigllama_engine_options
	if err := call(func() C.rigllama_status {
		return C.rigllama_engine_options_init(&options, C.sizeof_rigllama_engine_options)
	}); err != nil {
		return Options{}, err
	}
	var margins []uint32
	if options.fit_margins_mib != nil {
		for _, mib := range unsafe.Slice(options.fit_margins_mib, int(options.n_fit_margins_mib)) {
			margins = append(margins, uint32(mib))
		}
	}
	return Options{
		NCtx:               uint32(options.n_ctx),
		ContextOverflow:    ContextOverflow(options.context_overflow),
		NSeq:               uint32(options.n_seq),
		TypeK:              KVType(options.type_k),
		TypeV:              KVType(options.type_v),
		FlashAttention:     FlashAttention(options.flash_attention),
		Fit:                options.fit != 0,
		FitMinCtx:          uint32(options.fit_min_ctx),
		FitMarginsMiB:      margins,
		MaxCheckpointBytes: uint64(options.max_checkpoint_bytes),
		MaxCheckpoints:     uint32(options.max_checkpoints),
		NoCheckpoints:      options.max_checkpoints == 0,
		MmprojPath:         C.GoString(options.mmproj_path), // NULL: ""
		ThreadPriority:     ThreadPriority(options.thread_priority),
		RPCServers:         C.GoString(options.rpc_servers), // NULL: ""
		ModelOffset:        uint64(options.model_offset),
		ModelSize:          uint64(options.model_size),
		NoRepack:           options.no_repack != 0,
		Devices:            devicesFromC(options.devices),
	}, nil
}

// devicesFromC is the C option as Options.Devices: NULL is nil, "none" an empty slice.
func devicesFromC(devices *C.char) []string {
	if devices == nil {
		return nil
	}
	if text := C.GoString(devices); text != "none" {
		return strings.Split(text, ",")
	}
	return []string{}
}

// Open loads the model at path and returns once it is ready.
func Open(path string) (*Engine, error) { return OpenWith(path, Options{}) }

// OpenWith is Open with options.
func OpenWith(path string, opts Options) (*Engine, error) {
	options, free, err := optionsToC(path, opts)
	if err != nil {
		return nil, err
	}
	defer free()
	var ptr *C.rigllama_engine
	if err := call(func() C.rigllama_status { return C.rigllama_engine_create(&options, &ptr) }); err != nil {
		return nil, err
	}
	return &Engine{ptr: ptr}, nil
}

// optionsToC is the C options for path and opts; its strings and arrays are in C memory (the
// options C reads may not point into Go memory) until free is called.
func optionsToC(path string, opts Options) (options C.rigllama_engine_options, free func(), err error) {
	if err := call(func() C.rigllama_status {
		return C.rigllama_engine_options_init(&options, C.sizeof_rigllama_engine_options)
	}); err != nil {
		return options, nil, err
	}
	var owned []unsafe.Pointer
	free = func() {
		for _, p := range owned {
			C.free(p)
		}
	}
	cString := func(s string) *C.char {
		p := C.CString(s)
		owned = append(owned, unsafe.Pointer(p))
		return p
	}
	options.model_path = cString(path)
	if opts.NCtx != 0 {
		options.n_ctx = C.uint32_t(opts.NCtx)
	}
	options.context_overflow = C.int32_t(opts.ContextOverflow)
	if opts.NSeq != 0 {
		options.n_seq = C.uint32_t(opts.NSeq)
	}
	options.type_k = C.int32_t(opts.TypeK)
	options.type_v = C.int32_t(opts.TypeV)
	options.flash_attention = C.int32_t(opts.FlashAttention)
	if opts.Fit {
		options.fit = 1
	}
	if opts.FitMinCtx != 0 {
		options.fit_min_ctx = C.uint32_t(opts.FitMinCtx)
	}
	if n := len(opts.FitMarginsMiB); n > 0 {
		// In C memory, like the path: the options C reads may not point into Go memory.
		margins := (*C.uint32_t)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof(C.uint32_t(0)))))
		owned = append(owned, unsafe.Pointer(margins))
		for i, mib := range opts.FitMarginsMiB {
			unsafe.Slice(margins, n)[i] = C.uint32_t(mib)
		}
		options.fit_margins_mib = margins
		options.n_fit_margins_mib = C.size_t(n)
	}
	if opts.MaxCheckpointBytes != 0 {
		options.max_checkpoint_bytes = C.uint64_t(opts.MaxCheckpointBytes)
	}
	if opts.MaxCheckpoints != 0 {
		options.max_checkpoints = C.uint32_t(opts.MaxCheckpoints)
	}
	if opts.NoCheckpoints {
		options.max_checkpoints = 0
	}
	if opts.MmprojPath != "" {
		options.mmproj_path = cString(opts.MmprojPath)
	}
	options.thread_priority = C.int32_t(opts.ThreadPriority)
	if opts.RPCServers != "" {
		options.rpc_servers = cString(opts.RPCServers)
	}
	options.model_offset = C.uint64_t(opts.ModelOffset)
	options.model_size = C.uint64_t(opts.ModelSize)
	if opts.NoRepack {
		options.no_repack = 1
	}
	if opts.Devices != nil {
		devices := "none" // an empty non-nil slice: the CPU only
		if len(opts.Devices) > 0 {
			devices = strings.Join(opts.Devices, ",")
		}
		options.devices = cString(devices)
	}
	return options, free, nil
}

// Device (v0.3) is a device the library can use on this machine (ListDevices).
type Device struct {
	// Name is llama.cpp's name for it ("CPU", "Vulkan0", "CUDA0"): what Options.Devices takes.
	Name string `json:"name"`
	// Description is the driver's ("NVIDIA GeForce RTX 4070", the CPU's model name).
	Description string `json:"description"`
	// Type is "cpu", "gpu" (discrete), "igpu" (integrated, sharing the host's memory) or
	// "accel" (an accelerator beside the CPU, holding no layers of its own).
	Type string `json:"type"`
	// MemoryTotal and MemoryFree are bytes as the driver reports them now (the host's RAM for
	// the CPU).
	MemoryTotal uint64 `json:"memory_total"`
	MemoryFree  uint64 `json:"memory_free"`
}

// Memory (v0.3) is bytes of memory by purpose, as llama.cpp accounts them: the weights, the KV
// cache and the compute buffers. Describe's "memory" decodes into it too.
type Memory struct {
	ModelBytes   uint64 `json:"model_bytes"`
	KVCacheBytes uint64 `json:"kv_cache_bytes"`
	ComputeBytes uint64 `json:"compute_bytes"`
}

// DeviceUse (v0.3) is what a model holds on one device: MemoryEstimate's Devices, and the
// entries of Describe's "devices" (which decode into it).
type DeviceUse struct {
	Name string `json:"name"`
	Type string `json:"type"` // as Device.Type
	// Layers are the model's layers placed on it (llama.cpp's numbering; the output layer is
	// the model's layer count). Possibly empty for the CPU.
	Layers []uint32 `json:"layers"`
	// Memory is the bytes on this device, planned (Estimate) or allocated (Describe).
	Memory Memory `json:"memory"`
	// MemoryTotal and MemoryFree are the device's memory (at load, or now for an estimate).
	MemoryTotal uint64 `json:"memory_total"`
	MemoryFree  uint64 `json:"memory_free"`
}

// CPUBackend (v0.3) is the CPU code in use: Describe's "cpu_backend" decodes into it.
type CPUBackend struct {
	// Variant is "built-in" for the CPU code compiled into the library (the default build);
	// in a dynamic-backends build, the loaded module's instruction-set level ("x64", "haswell",
	// "zen4", ...), the best this CPU runs.
	Variant string `json:"variant"`
	// Module is the module file loaded (".../libggml-cpu-haswell.so"); "" when built in.
	Module string `json:"module"`
	// Features are the instruction sets that code was compiled with ("SSE3", "AVX2", ...) and
	// its build options ("REPACK", "LLAMAFILE").
	Features []string `json:"features"`
}

// SetBackendDir (v0.3) loads ggml's CPU modules (libggml-cpu-*.so, the best this CPU runs is
// used) from dir instead of the directory librigllama.so was loaded from (or
// $RIGLLAMA_BACKEND_DIR). It is process-wide: call it before the first engine is opened.
// Only a library built with the dynamic-backends feature loads modules: the default build has
// its CPU code built in and returns StatusInvalidArgument saying so, as it does for a
// directory without modules, or for another directory once they are loaded. Describe's
// "cpu_backend" (a CPUBackend) names the code in use.
func SetBackendDir(dir string) error {
	if strings.IndexByte(dir, 0) >= 0 {
		return &Error{Status: StatusInvalidArgument, Message: "the backend directory contains a NUL byte"}
	}
	cdir := C.CString(dir)
	defer C.free(unsafe.Pointer(cdir))
	return call(func() C.rigllama_status { return C.rigllama_set_backend_dir(cdir) })
}

// MemoryEstimate (v0.3) is what OpenWith with some options would allocate (Estimate).
type MemoryEstimate struct {
	// NCtx is the context the engine would have (Options.NCtx, capped at the model's training
	// context).
	NCtx uint32 `json:"n_ctx"`
	// Devices is per device, the CPU (host memory) first.
	Devices []DeviceUse `json:"devices"`
	// Total is the sums over Devices.
	Total Memory `json:"total"`
}

// takeJSON decodes the library's JSON text into v and frees the text.
func takeJSON(text *C.char, v any, what string) error {
	defer C.rigllama_string_free(text)
	if err := json.Unmarshal([]byte(C.GoString(text)), v); err != nil {
		return &Error{Status: StatusInternal, Message: fmt.Sprintf("%s: the library's JSON: %v", what, err)}
	}
	return nil
}

// ListDevices (v0.3) returns the devices the library can use on this machine, the CPU first
// (always there, named "CPU"). It needs no engine.
func ListDevices() ([]Device, error) {
	var text *C.char
	if err := call(func() C.rigllama_status { return C.rigllama_list_devices(&text) }); err != nil {
		return nil, err
	}
	var devices []Device
	if err := takeJSON(text, &devices, "rigllama_list_devices"); err != nil {
		return nil, err
	}
	return devices, nil
}

// Estimate (v0.3) returns what OpenWith(path, opts) would allocate, per device, without
// loading the weights (llama.cpp reads the file's metadata and plans every buffer), so that a
// game can pick the largest model that fits. It is within 10% of what the engine's Describe
// reports after the real open; a projector's memory is not included. The options are checked
// as OpenWith checks them; Fit and RPCServers are refused (StatusInvalidArgument). It runs on
// the calling goroutine, milliseconds to a second.
func Estimate(path string, opts Options) (MemoryEstimate, error) {
	options, free, err := optionsToC(path, opts)
	if err != nil {
		return MemoryEstimate{}, err
	}
	defer free()
	var text *C.char
	if err := call(func() C.rigllama_status { return C.rigllama_estimate(&options, &text) }); err != nil {
		return MemoryEstimate{}, err
	}
	var estimate MemoryEstimate
	if err := takeJSON(text, &estimate, "rigllama_estimate"); err != nil {
		return MemoryEstimate{}, err
	}
	return estimate, nil
}

// Close cancels what is running, joins the worker and frees the engine. Closing a closed
// engine does nothing. It always returns nil (io.Closer's signature).
func (e *Engine) Close() error {
	C.rigllama_engine_destroy(e.ptr) // NULL: a no-op
	e.ptr = nil
	return nil
}

// Complete generates the whole reply.
func (e *Engine) Complete(r Request) (string, Usage, error) {
	c, free := r.toC()
	defer free()
	usage := newUsage()
	var text *C.char
	if err := call(func() C.rigllama_status { return C.rigllama_engine_complete(e.ptr, &c, &text, usage) }); err != nil {
		return "", Usage{}, err
	}
	defer C.rigllama_string_free(text)
	return C.GoString(text), usageFromC(usage), nil
}

// Chat generates the whole reply and returns it as the assistant's message, OpenAI's JSON
// shape: {"role":"assistant","content":"..."|null,"reasoning_content":"..." (when any),
// "tool_calls":[{"id":"...","type":"function","function":{"name":"...","arguments":"{...}"}}]
// (when any)}; Usage.FinishReason is FinishToolCalls when it ended in calls. It is returned as
// JSON text so it can be appended to MessagesJSON as is (decode it with encoding/json to read it).
func (e *Engine) Chat(r Request) (string, Usage, error) {
	c, free := r.toC()
	defer free()
	usage := newUsage()
	var message *C.char
	if err := call(func() C.rigllama_status { return C.rigllama_engine_chat(e.ptr, &c, &message, usage) }); err != nil {
		return "", Usage{}, err
	}
	defer C.rigllama_string_free(message)
	return C.GoString(message), usageFromC(usage), nil
}

// ApplyTemplate returns the exact prompt text the model would be given for r (chat template
// applied, tools rendered), without running it.
func (e *Engine) ApplyTemplate(r Request) (string, error) {
	c, free := r.toC()
	defer free()
	var prompt *C.char
	if err := call(func() C.rigllama_status { return C.rigllama_engine_apply_template(e.ptr, &c, &prompt) }); err != nil {
		return "", err
	}
	defer C.rigllama_string_free(prompt)
	return C.GoString(prompt), nil
}

// Describe returns rigllama_engine_describe's JSON object (decode it with encoding/json): the
// model, n_ctx, n_seq, "memory" (a Memory: what llama.cpp allocated), "checkpoints",
// "thread_priority", "lora", "control_vector", ...; v0.3 "devices" (DeviceUse entries: every
// device holding part of the model, the CPU first), "gpu_fallback" (null, or why the model
// runs on the CPU although GPU layers were asked for) and "cpu_backend" (a CPUBackend: the CPU
// code in use). rigllama.h lists every member.
func (e *Engine) Describe() (string, error) {
	var text *C.char
	if err := call(func() C.rigllama_status { return C.rigllama_engine_describe(e.ptr, &text) }); err != nil {
		return "", err
	}
	defer C.rigllama_string_free(text)
	return C.GoString(text), nil
}

// CountTokens formats and tokenizes r exactly as Complete would, without running it, and
// returns the prompt's size in tokens (an image counting as its tokens): compare it with the
// context size to trim history.
func (e *Engine) CountTokens(r Request) (uint32, error) {
	c, free := r.toC()
	defer free()
	var n C.uint32_t
	if err := call(func() C.rigllama_status { return C.rigllama_engine_count_tokens(e.ptr, &c, &n) }); err != nil {
		return 0, err
	}
	return uint32(n), nil
}

// TokenFlags are Tokenize's and Detokenize's flags (v0.3), OR-ed.
type TokenFlags uint32

const (
	// TokenizeAddSpecial: Tokenize adds BOS/EOS as the vocabulary wants; Detokenize leaves out
	// the BOS/EOS such a tokenization added.
	TokenizeAddSpecial TokenFlags = C.RIGLLAMA_TOKENIZE_ADD_SPECIAL
	// TokenizeParseSpecial: Tokenize makes special-token text ("<start_of_turn>") its token,
	// else it is plain text; Detokenize writes special tokens out as their text, else as nothing.
	TokenizeParseSpecial TokenFlags = C.RIGLLAMA_TOKENIZE_PARSE_SPECIAL
	// TokenizeRawPrompt is both: what a raw prompt (Request.Raw) is tokenized with, and its
	// exact inverse.
	TokenizeRawPrompt = TokenizeAddSpecial | TokenizeParseSpecial
)

// Tokenize returns the token ids of text (UTF-8; a NUL byte in it fails with
// StatusInvalidArgument). With TokenizeRawPrompt they are what a raw prompt evaluates: as
// many as CountTokens says, and Detokenize with the same flags gives text back exactly. It runs
// on the engine's worker between decode steps. The first call passes room for len(text)/2+8
// ids, enough for most text; when the text makes more, the library says how many and the call
// is made again with that many.
func (e *Engine) Tokenize(text string, flags TokenFlags) ([]int32, error) {
	var ctext *C.char
	if text != "" {
		ctext = C.CString(text)
		defer C.free(unsafe.Pointer(ctext))
	}
	ids := make([]int32, len(text)/2+8)
	for {
		var n C.size_t
		// ids holds no Go pointers, so C may write into it during the call.
		err := call(func() C.rigllama_status {
			return C.rigllama_engine_tokenize(e.ptr, ctext, C.size_t(len(text)), C.uint32_t(flags),
				(*C.int32_t)(unsafe.Pointer(&ids[0])), C.size_t(len(ids)), &n)
		})
		if err == nil {
			return ids[:int(n)], nil
		}
		// Too small: n says how many ids the text makes; any other failure leaves n below.
		if !errors.Is(err, StatusInvalidArgument) || int(n) <= len(ids) {
			return nil, err
		}
		ids = make([]int32, int(n))
	}
}

// Detokenize returns the text of token ids (flags: the inverse of the same flags in Tokenize).
// Bytes that are not whole characters (ids cut inside one) come out as U+FFFD. An id outside
// the vocabulary fails with StatusInvalidArgument naming its index and value.
func (e *Engine) Detokenize(ids []int32, flags TokenFlags) (string, error) {
	var first *C.int32_t
	if len(ids) > 0 {
		first = (*C.int32_t)(unsafe.Pointer(&ids[0])) // no Go pointers in it: C may read it
	}
	var text *C.char
	if err := call(func() C.rigllama_status {
		return C.rigllama_engine_detokenize(e.ptr, first, C.size_t(len(ids)), C.uint32_t(flags), &text)
	}); err != nil {
		return "", err
	}
	defer C.rigllama_string_free(text)
	return C.GoString(text), nil
}

// SaveSnapshot returns the KV cache of the longest cached prefix of r's prompt (pass the
// conversation's next request) as a self-checking blob. Keep the messages yourself: the
// snapshot only saves evaluating them again.
func (e *Engine) SaveSnapshot(r Request) ([]byte, error) {
	c, free := r.toC()
	defer free()
	var data *C.uint8_t
	var length C.size_t
	if err := call(func() C.rigllama_status {
		return C.rigllama_engine_save_snapshot(e.ptr, &c, &data, &length)
	}); err != nil {
		return nil, err
	}
	defer C.rigllama_bytes_free(data)
	return C.GoBytes(unsafe.Pointer(data), C.int(length)), nil
}

// LoadSnapshot makes a snapshot the engine's KV cache. A blob from another model, or a
// damaged one, fails with StatusInvalidArgument and the engine keeps serving.
func (e *Engine) LoadSnapshot(snapshot []byte) error {
	if len(snapshot) == 0 {
		return &Error{Status: StatusInvalidArgument, Message: "empty snapshot"}
	}
	// The slice holds no Go pointers, so C may read it during the call.
	return call(func() C.rigllama_status {
		return C.rigllama_engine_load_snapshot(e.ptr, (*C.uint8_t)(unsafe.Pointer(&snapshot[0])), C.size_t(len(snapshot)))
	})
}

// Embed returns the pooled, L2-normalised embedding of text.
func (e *Engine) Embed(text string) ([]float32, error) {
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	var dims C.size_t
	if err := call(func() C.rigllama_status {
		return C.rigllama_engine_embed(e.ptr, ctext, nil, 0, &dims)
	}); err != nil {
		return nil, err
	}
	vector := make([]float32, int(dims))
	if len(vector) == 0 {
		return vector, nil
	}
	if err := call(func() C.rigllama_status {
		return C.rigllama_engine_embed(e.ptr, ctext, (*C.float)(unsafe.Pointer(&vector[0])), C.size_t(len(vector)), &dims)
	}); err != nil {
		return nil, err
	}
	return vector[:int(dims)], nil
}

// Rerank (v0.3) scores how well each of documents answers query, one score per document in
// their order (higher is better; unnormalised, as llama-server's /rerank returns it), with a
// reranker model (a GGUF with pooling type rank, as bge-reranker's). The chat KV cache is
// untouched. A model that is not a reranker, an empty query or document, or a pair over 2048
// tokens fails with StatusInvalidArgument naming it. No documents: an empty slice (at most
// 65,536).
func (e *Engine) Rerank(query string, documents []string) ([]float32, error) {
	cquery := C.CString(query)
	defer C.free(unsafe.Pointer(cquery))
	scores := make([]float32, len(documents))
	var array **C.char
	var first *C.float
	if n := len(documents); n > 0 {
		// The array is in C memory: C may not be handed Go memory holding pointers.
		array = (**C.char)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof((*C.char)(nil)))))
		texts := unsafe.Slice(array, n)
		for i, document := range documents {
			texts[i] = C.CString(document)
		}
		defer func() {
			for _, text := range texts {
				C.free(unsafe.Pointer(text))
			}
			C.free(unsafe.Pointer(array))
		}()
		first = (*C.float)(unsafe.Pointer(&scores[0])) // no Go pointers in it: C may write it
	}
	if err := call(func() C.rigllama_status {
		return C.rigllama_engine_rerank(e.ptr, cquery, array, C.size_t(len(documents)), first)
	}); err != nil {
		return nil, err
	}
	return scores, nil
}

// streamState travels to the callback through a cgo.Handle.
type streamState struct {
	onPiece  func(piece string) bool
	panicked interface{}
}

// Stream generates the reply, calling onPiece with each piece of its content on this
// goroutine. onPiece returns false to stop (FinishCallback, no error). A panic in onPiece stops
// generation and is re-raised here.
//
// When ctx ends first, the request is cancelled (within one decode step, or inside a prompt
// chunk) and the error matches StatusCancelled and ctx.Err(). Other requests on the engine go
// on. A ctx that can never end (context.Background()) takes the C library's callback path;
// any other runs the request as a job, so that it alone can be cancelled.
func (e *Engine) Stream(ctx context.Context, r Request, onPiece func(piece string) bool) (Usage, error) {
	if ctx.Done() == nil {
		return e.streamCallback(r, onPiece)
	}
	job, err := e.Submit(ctx, r)
	if err != nil {
		return Usage{}, err
	}
	defer job.Close()
	for {
		ev, err := job.Poll(time.Second) // ctx ending cancels the job: an ERROR event follows
		if err != nil {
			return Usage{}, err
		}
		switch {
		case ev.Kind == EventText && !onPiece(ev.Text):
			// As the callback path: stopped by the caller, not an error.
			if err := job.Cancel(); err != nil {
				return Usage{}, err
			}
			for !ev.Final() {
				if ev, err = job.Poll(time.Second); err != nil {
					return Usage{}, err
				}
			}
			usage, err := job.Usage()
			usage.FinishReason = FinishCallback
			return usage, err
		case ev.Kind == EventDone:
			return job.Usage()
		case ev.Kind == EventError:
			return Usage{}, job.eventError(ev)
		}
	}
}

// streamCallback is Stream through rigllama_engine_stream: pieces arrive through the
// exported goTokenCallback with a cgo.Handle as user_data.
func (e *Engine) streamCallback(r Request, onPiece func(piece string) bool) (Usage, error) {
	c, free := r.toC()
	defer free()
	state := &streamState{onPiece: onPiece}
	handle := cgo.NewHandle(state)
	defer handle.Delete()
	usage := newUsage()
	err := call(func() C.rigllama_status {
		return C.rigllama_go_stream(e.ptr, &c, C.uintptr_t(handle), usage)
	})
	if state.panicked != nil {
		panic(state.panicked)
	}
	if err != nil {
		return Usage{}, err
	}
	return usageFromC(usage), nil
}

// Cancel stops every request submitted before it; returns at once, from any goroutine.
func (e *Engine) Cancel() error {
	return call(func() C.rigllama_status { return C.rigllama_engine_cancel(e.ptr) })
}

// Pause holds the engine's worker between two decode steps and returns once it holds (within
// one step): running requests keep their state, requests submitted meanwhile wait, and Cancel,
// Job.Cancel and Close still work. Pausing a paused engine is a no-op.
func (e *Engine) Pause() error {
	return call(func() C.rigllama_status { return C.rigllama_engine_pause(e.ptr) })
}

// Resume lets a paused engine go on exactly where it stopped. A no-op when not paused.
func (e *Engine) Resume() error {
	return call(func() C.rigllama_status { return C.rigllama_engine_resume(e.ptr) })
}

// Reset empties the KV cache (after the requests submitted before it), so the next request is
// evaluated from scratch.
func (e *Engine) Reset() error {
	return call(func() C.rigllama_status { return C.rigllama_engine_reset(e.ptr) })
}

// AddLora (v0.2) loads the LoRA adapter GGUF at path (made for this engine's model) and
// applies it at scale (0: no effect, 1: as trained) beside any already applied, returning its
// id. It runs after the requests submitted before it and empties the KV cache. An adapter for
// another model, or a file that is not one, fails with StatusInvalidArgument; the engine keeps
// serving.
func (e *Engine) AddLora(path string, scale float32) (uint32, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var id C.uint32_t
	if err := call(func() C.rigllama_status {
		return C.rigllama_engine_add_lora(e.ptr, cpath, C.float(scale), &id)
	}); err != nil {
		return 0, err
	}
	return uint32(id), nil
}

// SetLoraScale (v0.2) changes an applied adapter's scale; it empties the KV cache.
func (e *Engine) SetLoraScale(id uint32, scale float32) error {
	return call(func() C.rigllama_status {
		return C.rigllama_engine_set_lora_scale(e.ptr, C.uint32_t(id), C.float(scale))
	})
}

// RemoveLora (v0.2) removes an adapter and frees it; it empties the KV cache.
func (e *Engine) RemoveLora(id uint32) error {
	return call(func() C.rigllama_status { return C.rigllama_engine_remove_lora(e.ptr, C.uint32_t(id)) })
}

// SetControlVector (v0.3) adds the control vector GGUF at path (direction.N tensors made for
// this engine's model, as llama.cpp's cvector-generator writes them) times strength (finite,
// within ±100; 0: no effect) to the output of layers layerStart..layerEnd inclusive (1-based;
// 0, 0: every layer), replacing any control vector set before. It runs after the requests
// submitted before it and empties the KV cache. A file that is not a control vector, one made
// for a model of another width, or a layer range outside the model fails with
// StatusInvalidArgument and the reason; the engine keeps serving. A reload drops it; snapshots
// are refused while it is set.
func (e *Engine) SetControlVector(path string, strength float32, layerStart, layerEnd int32) error {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	return call(func() C.rigllama_status {
		return C.rigllama_engine_set_control_vector(e.ptr, cpath, C.float(strength), C.int32_t(layerStart),
			C.int32_t(layerEnd))
	})
}

// ClearControlVector (v0.3) removes the control vector, if one is set; it empties the KV cache.
func (e *Engine) ClearControlVector() error {
	return call(func() C.rigllama_status { return C.rigllama_engine_clear_control_vector(e.ptr) })
}

// EventKind is what a poll returned.
type EventKind int32

const (
	EventNone  EventKind = C.RIGLLAMA_EVENT_KIND_NONE
	EventText  EventKind = C.RIGLLAMA_EVENT_KIND_TEXT
	EventDone  EventKind = C.RIGLLAMA_EVENT_KIND_DONE
	EventError EventKind = C.RIGLLAMA_EVENT_KIND_ERROR
	// v0.2: Text is a piece of the model's reasoning, never part of the content.
	EventReasoning EventKind = C.RIGLLAMA_EVENT_KIND_REASONING
	// v0.2: Text is one whole tool call as JSON: {"id":"...","name":"...","arguments":{...}}.
	EventToolCall EventKind = C.RIGLLAMA_EVENT_KIND_TOOL_CALL
	// v0.2, only when Request.NLogprobs > 0: Text is a JSON array of OpenAI logprobs.content
	// entries, {"token","id","logprob","bytes","top_logprobs":[...]}, one per token generated
	// since the previous one, sent before the events that carry those tokens' text.
	EventLogprobs EventKind = C.RIGLLAMA_EVENT_KIND_LOGPROBS
)

// Event is one event of a job, copied out of the library's buffers.
type Event struct {
	Kind    EventKind
	Status  Status // EventError: why
	Text    string // EventText, EventReasoning, EventToolCall, EventLogprobs
	Message string // EventError
}

// Final reports whether this is the job's last event (DONE or ERROR).
func (ev Event) Final() bool { return ev.Kind == EventDone || ev.Kind == EventError }

// Job is a submitted request whose events are polled. Close it when done.
type Job struct {
	ptr *C.rigllama_job
	ctx context.Context
	// mu keeps the context's watcher from cancelling a job Close has freed.
	mu     sync.Mutex
	closed chan struct{}
}

// Submit queues r and returns at once. When ctx ends before the job does, the job is
// cancelled: its last event is EventError with StatusCancelled. A ctx that has already ended
// submits nothing and returns ctx.Err().
func (e *Engine) Submit(ctx context.Context, r Request) (*Job, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, free := r.toC()
	defer free()
	var ptr *C.rigllama_job
	if err := call(func() C.rigllama_status { return C.rigllama_engine_submit(e.ptr, &c, &ptr) }); err != nil {
		return nil, err
	}
	job := &Job{ptr: ptr, ctx: ctx, closed: make(chan struct{})}
	if done := ctx.Done(); done != nil {
		go func() {
			select {
			case <-done:
				job.mu.Lock()
				if job.ptr != nil {
					C.rigllama_job_cancel(job.ptr)
				}
				job.mu.Unlock()
			case <-job.closed:
			}
		}()
	}
	return job, nil
}

// Next waits for the job's next event (after the final one, it repeats it). When ctx ends
// first it returns ctx.Err() and leaves the job running: cancel it through Submit's context
// or Cancel.
func (j *Job) Next(ctx context.Context) (Event, error) {
	for {
		if err := ctx.Err(); err != nil {
			return Event{}, err
		}
		// Short waits, so that ctx ending is seen within one of them.
		ev, err := j.Poll(100 * time.Millisecond)
		if err != nil || ev.Kind != EventNone {
			return ev, err
		}
	}
}

// eventError is the error an EventError stands for; it matches Submit's ctx.Err() when that
// context cancelled the job.
func (j *Job) eventError(ev Event) error {
	err := &Error{Status: ev.Status, Message: ev.Message}
	if ev.Status == StatusCancelled && j.ctx != nil {
		err.cause = j.ctx.Err()
	}
	return err
}

// Poll returns the next event, waiting up to timeout (0 = never block: EventNone if nothing
// is new).
func (j *Job) Poll(timeout time.Duration) (Event, error) {
	var ev C.rigllama_event
	ms := C.uint32_t(timeout / time.Millisecond)
	if err := call(func() C.rigllama_status {
		if status := C.rigllama_event_init(&ev, C.sizeof_rigllama_event); status != C.RIGLLAMA_STATUS_OK {
			return status
		}
		return C.rigllama_job_poll(j.ptr, ms, &ev)
	}); err != nil {
		return Event{}, err
	}
	out := Event{Kind: EventKind(ev.kind), Status: Status(ev.status)}
	if ev.text != nil {
		out.Text = C.GoStringN(ev.text, C.int(ev.text_len))
	}
	if ev.message != nil {
		out.Message = C.GoString(ev.message)
	}
	return out, nil
}

// Cancel cancels this job only; its next events end with EventError / StatusCancelled.
func (j *Job) Cancel() error {
	return call(func() C.rigllama_status { return C.rigllama_job_cancel(j.ptr) })
}

// Usage is the job's usage once it has ended.
func (j *Job) Usage() (Usage, error) {
	usage := newUsage()
	if err := call(func() C.rigllama_status { return C.rigllama_job_usage(j.ptr, usage) }); err != nil {
		return Usage{}, err
	}
	return usageFromC(usage), nil
}

// Close frees the job, cancelling it if it is still running. Closing a closed job does
// nothing. It always returns nil (io.Closer's signature).
func (j *Job) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.ptr != nil {
		C.rigllama_job_free(j.ptr)
		j.ptr = nil
		close(j.closed)
	}
	return nil
}
