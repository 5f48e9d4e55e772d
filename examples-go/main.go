// Streams a reply from a model through the rigllama cgo package, cancels a second request
// submitted as a job, compares two sentences by embedding, reloads a conversation's snapshot,
// runs two jobs at once with different priorities on an NSeq 2 engine, paused and resumed
// midway, has a grammar decide a Chat reply and shows the prompt a tool list makes, checks
// the log-probabilities a job reports, and has prompt-lookup speculation (DraftMax) guess a
// reply that repeats its prompt. Also checks the defaults DefaultOptions reads from
// rigllama_engine_options_init (state checkpoints: 32, 512 MiB; no MmprojPath; ThreadPriority
// normal), that an unknown ThreadPriority is refused, that this library (built without the
// mtmd cargo feature) refuses a projector, and that a text request counts no image tokens.
// Exits non-zero on any failure.
//
//	usage: rigllama-go MODEL.gguf
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"rigllamaexample/rigllama"
)

var failures int

func expect(ok bool, format string, args ...interface{}) {
	mark := "ok    "
	if !ok {
		mark = "FAIL  "
		failures++
	}
	fmt.Printf(mark+format+"\n", args...)
}

func streamReply(engine *rigllama.Engine) {
	request := rigllama.NewRequest("The three primary colors are")
	request.Raw = true
	request.MaxTokens = 24
	request.Temperature = 0
	var text strings.Builder
	pieces := 0
	fmt.Print("[stream] ", request.Prompt)
	usage, err := engine.Stream(request, func(piece string) bool {
		fmt.Print(piece)
		text.WriteString(piece)
		pieces++
		return true
	})
	fmt.Println()
	expect(err == nil, "stream returned without error (%v)", err)
	expect(pieces > 0 && text.Len() > 0, "stream delivered %d pieces", pieces)
	expect(usage.CompletionTokens > 0 && usage.CompletionTokens <= 24, "usage.CompletionTokens = %d", usage.CompletionTokens)
	expect(usage.FinishReason == rigllama.FinishLength || usage.FinishReason == rigllama.FinishStop,
		"finish reason = %d", usage.FinishReason)
	expect(usage.ImageTokens == 0, "a text request has no image tokens (usage.ImageTokens = %d)", usage.ImageTokens)
}

// Polls until the first text, cancels the job, then polls to its final event.
func cancelJob(engine *rigllama.Engine) {
	request := rigllama.NewRequest("Once upon a time")
	request.Raw = true
	request.MaxTokens = 32
	request.Temperature = 0
	job, err := engine.Submit(request)
	if err != nil {
		expect(false, "submit: %v", err)
		return
	}
	defer job.Free()
	deadline := time.Now().Add(60 * time.Second)
	var ev rigllama.Event
	for ev.Kind == rigllama.EventNone && time.Now().Before(deadline) {
		if ev, err = job.Poll(time.Second); err != nil {
			expect(false, "poll: %v", err)
			return
		}
	}
	expect(ev.Kind == rigllama.EventText, "job produced text before the cancel (kind %d)", ev.Kind)
	expect(job.Cancel() == nil, "job.Cancel")
	for !ev.Final() && time.Now().Before(deadline) {
		if ev, err = job.Poll(time.Second); err != nil {
			expect(false, "poll: %v", err)
			return
		}
	}
	fmt.Printf("[cancel job] final event kind %d, status %s, message %q\n", ev.Kind, ev.Status, ev.Message)
	expect(ev.Kind == rigllama.EventError && ev.Status == rigllama.StatusCancelled,
		"cancelled job ended with ERROR/CANCELLED")
	_, err = job.Usage()
	expect(err == nil, "job usage after the end (%v)", err)
}

func dot(a, b []float32) float64 {
	sum := 0.0
	for i := range a {
		sum += float64(a[i]) * float64(b[i])
	}
	return sum
}

func compareSentences(engine *rigllama.Engine) {
	var vectors [3][]float32
	for i, text := range []string{"The cat sat on the mat.", "A cat was sitting on the mat.",
		"Quarterly tax filings are due in April."} {
		var err error
		if vectors[i], err = engine.Embed(text); err != nil {
			expect(false, "embed: %v", err)
			return
		}
	}
	cat, cat2, tax := vectors[0], vectors[1], vectors[2]
	fmt.Printf("[embed] %d dims; cat/cat %.3f, cat/tax %.3f\n", len(cat), dot(cat, cat2), dot(cat, tax))
	expect(dot(cat, cat2) > dot(cat, tax), "the similar sentence is closer than the unrelated one")
}

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

func messagesJSON(messages []message) string {
	b, _ := json.Marshal(messages)
	return string(b)
}

// A "save game": one turn, a snapshot for the next, a damaged copy refused, the real one
// loaded, the next turn served from it.
func saveAndLoad(engine *rigllama.Engine) {
	messages := []message{{"user", "Name three rivers in Europe."}}
	turn := rigllama.NewRequest("")
	turn.MessagesJSON = messagesJSON(messages)
	turn.MaxTokens = 8
	turn.Temperature = 0
	reply, _, err := engine.Complete(turn)
	if err != nil {
		expect(false, "first turn: %v", err)
		return
	}
	messages = append(messages, message{"assistant", reply}, message{"user", "Which is the longest?"})
	next := turn
	next.MessagesJSON = messagesJSON(messages)
	snapshot, err := engine.SaveSnapshot(next)
	expect(err == nil && len(snapshot) > 0, "save a snapshot: %d bytes (%v)", len(snapshot), err)
	err = engine.LoadSnapshot(snapshot[:len(snapshot)-1])
	var rerr *rigllama.Error
	expect(errors.As(err, &rerr) && rerr.Status == rigllama.StatusInvalidArgument, "a truncated snapshot fails: %v", err)
	expect(engine.LoadSnapshot(snapshot) == nil, "the whole snapshot loads")
	_, usage, err := engine.Complete(next)
	expect(err == nil && usage.CachedPromptTokens > 0, "the next turn reuses %d of %d prompt tokens (dropped %d)",
		usage.CachedPromptTokens, usage.PromptTokens, usage.DroppedTokens)
}

// Two jobs at once on an NSeq 2 engine, submitted while it is paused so they start together,
// polled round-robin from this goroutine; a pause midway holds both.
func twoAtOnce(model string) {
	engine, err := rigllama.OpenWith(model, rigllama.Options{NSeq: 2})
	if err != nil {
		expect(false, "open with NSeq 2: %v", err)
		return
	}
	defer engine.Close()
	expect(engine.Pause() == nil, "pause")
	var jobs [2]*rigllama.Job
	for i, prompt := range []string{"The blacksmith told a long story about", "The guard pointed to the exit and said"} {
		request := rigllama.NewRequest(prompt)
		request.Raw = true
		request.MaxTokens = 12
		request.Temperature = 0
		request.Priority = int32(10 * i) // the player's line (i = 1) comes first
		if jobs[i], err = engine.Submit(request); err != nil {
			expect(false, "submit: %v", err)
			return
		}
		defer jobs[i].Free()
	}
	ev, err := jobs[0].Poll(200 * time.Millisecond)
	expect(err == nil && ev.Kind == rigllama.EventNone, "nothing runs while paused (kind %d)", ev.Kind)
	expect(engine.Resume() == nil, "resume")
	texts := [2]int{}
	done := [2]bool{}
	paused := false
	deadline := time.Now().Add(60 * time.Second)
	for !(done[0] && done[1]) && time.Now().Before(deadline) {
		for i, job := range jobs {
			for !done[i] {
				ev, err := job.Poll(0)
				if err != nil || ev.Kind == rigllama.EventNone {
					break
				}
				if ev.Kind == rigllama.EventText {
					texts[i]++
					continue
				}
				done[i] = true
				usage, _ := job.Usage()
				expect(ev.Kind == rigllama.EventDone && usage.CompletionTokens == 12,
					"job %d (priority %d) done with %d tokens", i, 10*i, usage.CompletionTokens)
			}
		}
		if !paused && texts[0] > 0 && texts[1] > 0 {
			// Both are generating: hold them for a moment, as a game would during a level load.
			paused = true
			expect(!done[0] && !done[1], "both jobs ran at once")
			expect(engine.Pause() == nil && engine.Resume() == nil, "pause and resume while both run")
		}
		time.Sleep(time.Millisecond)
	}
	fmt.Printf("[two at once] %d and %d pieces\n", texts[0], texts[1])
}

// v0.2 structured output: a grammar decides Chat's reply exactly, and ApplyTemplate shows how
// a tool list reaches the model, without running anything.
func grammarAndTools(engine *rigllama.Engine) {
	question := rigllama.NewRequest("Is the sky blue?")
	question.Grammar = `root ::= ("yes" | "no") "."`
	question.Reasoning = rigllama.ReasoningOff // no thinking before a constrained answer
	question.MaxTokens = 8
	question.Temperature = 0
	reply, usage, err := engine.Chat(question)
	fmt.Println("[grammar]", reply)
	var message struct {
		Role      string            `json:"role"`
		Content   *string           `json:"content"`
		ToolCalls []json.RawMessage `json:"tool_calls"`
	}
	if err == nil {
		err = json.Unmarshal([]byte(reply), &message)
	}
	expect(err == nil && message.Role == "assistant" && message.Content != nil &&
		(*message.Content == "yes." || *message.Content == "no.") && len(message.ToolCalls) == 0 &&
		usage.FinishReason == rigllama.FinishStop, "the grammar decided the reply (finish reason %d, %v)",
		usage.FinishReason, err)

	ask := rigllama.NewRequest("What is the weather in Paris?")
	ask.ToolsJSON = `[{"type":"function","function":{"name":"get_weather","description":"Weather in a city",` +
		`"parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]`
	ask.ToolChoice = rigllama.ToolChoiceRequired
	prompt, err := engine.ApplyTemplate(ask)
	expect(err == nil && strings.Contains(prompt, "get_weather"),
		"ApplyTemplate renders the tool (%d characters, %v)", len(prompt), err)
	ask.Grammar = `root ::= "a"`
	_, _, err = engine.Chat(ask)
	var rerr *rigllama.Error
	expect(errors.As(err, &rerr) && rerr.Status == rigllama.StatusInvalidArgument,
		"a grammar beside tools the model must call is refused: %v", err)
}

// v0.2 log-probabilities: with NLogprobs 3 the job sends EventLogprobs events, JSON arrays of
// {"token","id","logprob","bytes","top_logprobs":[...]}, before the text of their tokens. At
// temperature 0 the chosen token is the most likely one: the first of its top_logprobs.
func logprobs(engine *rigllama.Engine) {
	request := rigllama.NewRequest("The capital of France is")
	request.Raw = true
	request.MaxTokens = 8
	request.Temperature = 0
	request.NLogprobs = 3
	job, err := engine.Submit(request)
	if err != nil {
		expect(false, "submit: %v", err)
		return
	}
	defer job.Free()
	type logprob struct {
		Token       string    `json:"token"`
		ID          int32     `json:"id"`
		Logprob     float64   `json:"logprob"`
		TopLogprobs []logprob `json:"top_logprobs"`
	}
	var entries []logprob
	var ev rigllama.Event
	deadline := time.Now().Add(60 * time.Second)
	for !ev.Final() && time.Now().Before(deadline) {
		if ev, err = job.Poll(time.Second); err != nil {
			expect(false, "poll: %v", err)
			return
		}
		if ev.Kind == rigllama.EventLogprobs {
			var batch []logprob
			if err = json.Unmarshal([]byte(ev.Text), &batch); err != nil {
				expect(false, "the LOGPROBS text parses as JSON: %v", err)
				return
			}
			entries = append(entries, batch...)
		}
	}
	ok := ev.Kind == rigllama.EventDone && len(entries) > 0
	var tokens []string
	for _, e := range entries {
		top := e.TopLogprobs
		ok = ok && e.Logprob <= 0 && len(top) >= 1 && len(top) <= 3 && top[0].ID == e.ID && top[0].Token == e.Token
		for i := 1; ok && i < len(top); i++ {
			ok = top[i].Logprob <= top[i-1].Logprob
		}
		tokens = append(tokens, e.Token)
	}
	fmt.Printf("[logprobs] %q\n", tokens)
	expect(ok, "%d logprobs entries, each <= 0 with at most 3 alternatives, the first one chosen (kind %d, %q)",
		len(entries), ev.Kind, ev.Message)
}

// v0.2 prompt-lookup speculation: with DraftMax 8, tokens guessed from the prompt are verified
// in the same decode; Usage counts them (DraftedTokens) and the ones the sampler confirmed
// (AcceptedTokens). plain is the usage of a request without DraftMax (0): it guesses nothing.
func promptLookup(engine *rigllama.Engine, plain rigllama.Usage) {
	expect(plain.DraftedTokens == 0 && plain.AcceptedTokens == 0,
		"without DraftMax nothing is guessed (drafted %d, accepted %d)", plain.DraftedTokens, plain.AcceptedTokens)
	request := rigllama.NewRequest("Repeat exactly: the quick brown fox jumps over the lazy dog. " +
		"the quick brown fox jumps over the lazy dog.")
	request.Raw = true
	request.MaxTokens = 48
	request.Temperature = 0
	request.DraftMax = 8
	text, usage, err := engine.Complete(request)
	if err != nil {
		expect(false, "complete with DraftMax 8: %v", err)
		return
	}
	fmt.Printf("[draft] %q: %d tokens, %d guessed, %d accepted\n", text, usage.CompletionTokens,
		usage.DraftedTokens, usage.AcceptedTokens)
	expect(usage.DraftedTokens > 0 && usage.AcceptedTokens <= usage.DraftedTokens,
		"DraftMax 8 guesses from a repeated prompt (drafted %d, accepted %d)", usage.DraftedTokens, usage.AcceptedTokens)
}

func main() {
	model := os.Getenv("RIGLLAMA_MODEL")
	if len(os.Args) > 1 {
		model = os.Args[1]
	}
	if model == "" {
		fmt.Fprintln(os.Stderr, "usage: rigllama-go MODEL.gguf (or set RIGLLAMA_MODEL)")
		os.Exit(2)
	}
	fmt.Printf("rigllama %s from Go\n", rigllama.Version())
	defaults, err := rigllama.DefaultOptions()
	expect(err == nil && defaults.MaxCheckpoints == 32 && defaults.MaxCheckpointBytes == 512<<20 && !defaults.NoCheckpoints,
		"options_init's checkpoint defaults: MaxCheckpoints %d (32), MaxCheckpointBytes %d (512 MiB) (%v)",
		defaults.MaxCheckpoints, defaults.MaxCheckpointBytes, err)
	expect(err == nil && defaults.MmprojPath == "", "options_init's mmproj_path is NULL (MmprojPath %q)", defaults.MmprojPath)
	expect(err == nil && defaults.ThreadPriority == rigllama.ThreadPriorityNormal,
		"options_init's thread_priority is NORMAL (ThreadPriority %d)", defaults.ThreadPriority)

	// OpenWith passes ThreadPriority through: a value C does not know is refused, naming it.
	var rerr *rigllama.Error
	_, err = rigllama.OpenWith(model, rigllama.Options{ThreadPriority: 7})
	expect(errors.As(err, &rerr) && rerr.Status == rigllama.StatusInvalidArgument &&
		strings.Contains(rerr.Message, "thread_priority 7"), "ThreadPriority 7 fails with INVALID_ARGUMENT: %v", err)

	// The default build has no vision: a projector is refused before any model loads.
	rerr = nil
	_, err = rigllama.OpenWith(model, rigllama.Options{MmprojPath: "/nonexistent/mmproj.gguf"})
	expect(errors.As(err, &rerr) && rerr.Status == rigllama.StatusInvalidArgument && strings.Contains(rerr.Message, "mtmd"),
		"a projector without the mtmd feature fails with INVALID_ARGUMENT: %v", err)

	// The message comes from rigllama_last_error, read on the thread that made the call.
	_, err = rigllama.Open("/nonexistent/model.gguf")
	rerr = nil
	expect(errors.As(err, &rerr) && rerr.Status == rigllama.StatusModelLoadFailed &&
		strings.Contains(rerr.Message, "/nonexistent/model.gguf"), "a missing model fails: %v", err)

	engine, err := rigllama.Open(model)
	if err != nil {
		fmt.Println("FAIL  open:", err)
		os.Exit(1)
	}
	defer engine.Close()
	streamReply(engine)
	cancelJob(engine)
	next := rigllama.NewRequest("Two plus two is")
	next.Raw = true
	next.MaxTokens = 4
	next.Temperature = 0
	text, plain, err := engine.Complete(next)
	expect(err == nil && text != "", "the engine serves a request after the cancel (%v)", err)
	compareSentences(engine)
	saveAndLoad(engine)
	twoAtOnce(model)
	grammarAndTools(engine)
	logprobs(engine)
	promptLookup(engine, plain)

	if failures > 0 {
		fmt.Println("FAILED")
		engine.Close()
		os.Exit(1)
	}
	fmt.Println("all passed")
}
