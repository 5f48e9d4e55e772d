package rigllama_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	rigllama "github.com/rigllama/rigllama/bindings/go"
)

// The tests that load a model run against $RIGLLAMA_MODEL, one at a time (go test runs a
// package's tests sequentially unless they call t.Parallel, and none does: two engines
// generating at once on a small machine slow each other down a hundredfold).

var (
	shared     *rigllama.Engine
	sharedErr  error
	sharedOnce sync.Once
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.Close()
	}
	os.Exit(code)
}

// modelPath returns $RIGLLAMA_MODEL or skips the test, saying how to run it.
func modelPath(t *testing.T) string {
	t.Helper()
	path := os.Getenv("RIGLLAMA_MODEL")
	if path == "" {
		t.Skip("RIGLLAMA_MODEL is not set: set it to a GGUF model file to run the tests that load one " +
			"(in the rigllama repository, scripts/fetch-model fetches the default model and prints its path)")
	}
	return path
}

// engine returns one engine on the model, shared by the tests (loading takes a moment).
func engine(t *testing.T) *rigllama.Engine {
	t.Helper()
	path := modelPath(t)
	sharedOnce.Do(func() { shared, sharedErr = rigllama.Open(path) })
	if sharedErr != nil {
		t.Fatalf("Open(%q): %v", path, sharedErr)
	}
	return shared
}

// greedy is a short, deterministic text completion.
func greedy(prompt string, maxTokens uint32) rigllama.Request {
	r := rigllama.NewRequest(prompt)
	r.Raw = true
	r.MaxTokens = maxTokens
	r.Temperature = 0
	return r
}

// untilFinal polls a job to its final event, collecting the text.
func untilFinal(t *testing.T, job *rigllama.Job) (rigllama.Event, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var text strings.Builder
	for {
		ev, err := job.Next(ctx)
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if ev.Kind == rigllama.EventText {
			text.WriteString(ev.Text)
		}
		if ev.Final() {
			return ev, text.String()
		}
	}
}

func TestVersion(t *testing.T) {
	if v := rigllama.Version(); !regexp.MustCompile(`^\d+\.\d+\.\d+`).MatchString(v) {
		t.Fatalf("Version() = %q, want X.Y.Z", v)
	}
}

func TestStatusIsAnError(t *testing.T) {
	statuses := []rigllama.Status{rigllama.StatusNullArgument, rigllama.StatusInvalidArgument,
		rigllama.StatusModelLoadFailed, rigllama.StatusContextOverflow, rigllama.StatusCancelled,
		rigllama.StatusBusy, rigllama.StatusShutDown, rigllama.StatusInternal}
	seen := map[string]bool{}
	for _, status := range statuses {
		err := error(&rigllama.Error{Status: status, Message: "the message"})
		if !errors.Is(err, status) {
			t.Errorf("errors.Is(%v, %v) = false", err, status)
		}
		if want := "rigllama: " + status.String() + ": the message"; err.Error() != want || status.Error() != status.String() {
			t.Errorf("the error reads %q (want %q), its status %q", err.Error(), want, status.Error())
		}
		for _, other := range statuses {
			if other != status && errors.Is(err, other) {
				t.Errorf("errors.Is(%v, %v) = true", err, other)
			}
		}
		if text := status.String(); text == "" || seen[text] {
			t.Errorf("status %d has the text %q, empty or not unique", int32(status), text)
		} else {
			seen[text] = true
		}
	}
}

// Each bad option is refused by OpenWith with its status, and the message names the cause.
func TestOpenRefuses(t *testing.T) {
	cases := []struct {
		name      string
		path      string // "" = the model
		options   rigllama.Options
		status    rigllama.Status
		inMessage string
	}{
		{"a missing model file", "/nonexistent/model.gguf", rigllama.Options{}, rigllama.StatusModelLoadFailed, "/nonexistent/model.gguf"},
		{"an unknown ThreadPriority", "", rigllama.Options{ThreadPriority: 7}, rigllama.StatusInvalidArgument, "thread_priority 7"},
		{"a projector without the mtmd feature", "", rigllama.Options{MmprojPath: "/nonexistent/mmproj.gguf"}, rigllama.StatusInvalidArgument, "mtmd"},
		{"NSeq 65", "", rigllama.Options{NSeq: 65}, rigllama.StatusInvalidArgument, "n_seq 65"},
		{"a model range past the end of the file", "", rigllama.Options{ModelOffset: 1 << 40}, rigllama.StatusModelLoadFailed, "past the end of the file"},
		{"a device that is not there", "", rigllama.Options{Devices: []string{"NoSuchGPU0"}}, rigllama.StatusInvalidArgument, "NoSuchGPU0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = modelPath(t)
			}
			engine, err := rigllama.OpenWith(path, tc.options)
			if err == nil {
				engine.Close()
				t.Fatalf("OpenWith succeeded, want %v", tc.status)
			}
			var rerr *rigllama.Error
			if !errors.As(err, &rerr) || !errors.Is(err, tc.status) || !strings.Contains(rerr.Message, tc.inMessage) {
				t.Fatalf("OpenWith: %v; want %v with %q in the message", err, tc.status, tc.inMessage)
			}
			if tc.options.Devices != nil && !strings.Contains(rerr.Message, "CPU") {
				t.Errorf("OpenWith: %v; want the devices there are (CPU) in the message", err)
			}
		})
	}
}

func TestDefaultOptions(t *testing.T) {
	defaults, err := rigllama.DefaultOptions()
	if err != nil {
		t.Fatal(err)
	}
	if defaults.MaxCheckpoints != 32 || defaults.MaxCheckpointBytes != 512<<20 || defaults.NoCheckpoints {
		t.Errorf("checkpoints: MaxCheckpoints %d (want 32), MaxCheckpointBytes %d (want 512 MiB), NoCheckpoints %v",
			defaults.MaxCheckpoints, defaults.MaxCheckpointBytes, defaults.NoCheckpoints)
	}
	if defaults.MmprojPath != "" {
		t.Errorf("MmprojPath = %q, want none", defaults.MmprojPath)
	}
	if defaults.ThreadPriority != rigllama.ThreadPriorityNormal {
		t.Errorf("ThreadPriority = %d, want normal", defaults.ThreadPriority)
	}
	if defaults.Devices != nil {
		t.Errorf("Devices = %q, want nil (llama.cpp's choice)", defaults.Devices)
	}
}

// ListDevices needs no engine and no model: the CPU is always there, first.
func TestListDevices(t *testing.T) {
	devices, err := rigllama.ListDevices()
	if err != nil {
		t.Fatal(err)
	}
	if len(devices) == 0 || devices[0].Name != "CPU" || devices[0].Type != "cpu" {
		t.Fatalf("ListDevices() = %+v; want the CPU first", devices)
	}
	if cpu := devices[0]; cpu.MemoryTotal <= 1<<30 || cpu.MemoryFree == 0 || cpu.MemoryFree > cpu.MemoryTotal {
		t.Errorf("the CPU's memory: %d total, %d free; want over 1 GiB, free within it", cpu.MemoryTotal, cpu.MemoryFree)
	}
	for _, device := range devices {
		switch device.Type {
		case "cpu", "gpu", "igpu", "accel":
		default:
			t.Errorf("device %q has type %q", device.Name, device.Type)
		}
	}
}

// described decodes the engine's Describe into the members the device tests read.
type described struct {
	NCtx        uint32               `json:"n_ctx"`
	Memory      rigllama.Memory      `json:"memory"`
	Devices     []rigllama.DeviceUse `json:"devices"`
	GPUFallback *string              `json:"gpu_fallback"`
	CPUBackend  rigllama.CPUBackend  `json:"cpu_backend"`
}

func describe(t *testing.T, e *rigllama.Engine) described {
	t.Helper()
	text, err := e.Describe()
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	var d described
	if err := json.Unmarshal([]byte(text), &d); err != nil {
		t.Fatalf("Describe: %v in %s", err, text)
	}
	return d
}

// within10Percent fails the test unless the estimate's ModelBytes and KVCacheBytes are within
// 10% of what was allocated.
func within10Percent(t *testing.T, planned, allocated rigllama.Memory) {
	t.Helper()
	for _, m := range []struct {
		name               string
		planned, allocated uint64
	}{
		{"model_bytes", planned.ModelBytes, allocated.ModelBytes},
		{"kv_cache_bytes", planned.KVCacheBytes, allocated.KVCacheBytes},
	} {
		if m.allocated == 0 || math.Abs(float64(m.planned)-float64(m.allocated)) > 0.1*float64(m.allocated) {
			t.Errorf("%s: estimated %d, allocated %d; want within 10%%", m.name, m.planned, m.allocated)
		}
	}
}

// Estimate with the default options (the shared engine's) plans what the engine allocated,
// without loading the weights; half the context plans a smaller KV cache.
func TestEstimate(t *testing.T) {
	path := modelPath(t)
	planned, err := rigllama.Estimate(path, rigllama.Options{})
	if err != nil {
		t.Fatalf("Estimate: %v", err)
	}
	if planned.NCtx != 4096 || len(planned.Devices) == 0 || planned.Devices[0].Name != "CPU" {
		t.Fatalf("Estimate = %+v; want n_ctx 4096 and the CPU first", planned)
	}
	var sum rigllama.Memory
	for _, device := range planned.Devices {
		sum.ModelBytes += device.Memory.ModelBytes
		sum.KVCacheBytes += device.Memory.KVCacheBytes
		sum.ComputeBytes += device.Memory.ComputeBytes
	}
	if sum != planned.Total {
		t.Errorf("Total %+v; want the devices' sum %+v", planned.Total, sum)
	}
	d := describe(t, engine(t))
	if d.NCtx != planned.NCtx {
		t.Errorf("the engine's n_ctx %d, the estimate's %d", d.NCtx, planned.NCtx)
	}
	within10Percent(t, planned.Total, d.Memory)
	half, err := rigllama.Estimate(path, rigllama.Options{NCtx: 2048})
	if err != nil {
		t.Fatalf("Estimate(NCtx 2048): %v", err)
	}
	if half.NCtx != 2048 || half.Total.KVCacheBytes >= planned.Total.KVCacheBytes {
		t.Errorf("Estimate(NCtx 2048) = %+v; want n_ctx 2048 and less KV cache than %d", half, planned.Total.KVCacheBytes)
	}
}

func TestEstimateRefusesFit(t *testing.T) {
	_, err := rigllama.Estimate(modelPath(t), rigllama.Options{Fit: true})
	var rerr *rigllama.Error
	if !errors.As(err, &rerr) || !errors.Is(err, rigllama.StatusInvalidArgument) || !strings.Contains(rerr.Message, "fit") {
		t.Fatalf("Estimate(Fit): %v; want StatusInvalidArgument naming fit", err)
	}
}

// Devices ["CPU"]: the model on the CPU, as Describe reports it, no GPU fallback, and the
// estimate for the same options within 10% of it.
func TestDevicesCPU(t *testing.T) {
	path := modelPath(t)
	options := rigllama.Options{Devices: []string{"CPU"}}
	planned, err := rigllama.Estimate(path, options)
	if err != nil {
		t.Fatalf("Estimate: %v", err)
	}
	e, err := rigllama.OpenWith(path, options)
	if err != nil {
		t.Fatalf("OpenWith(Devices [CPU]): %v", err)
	}
	defer e.Close()
	d := describe(t, e)
	if len(d.Devices) == 0 || d.Devices[0].Name != "CPU" || d.Devices[0].Type != "cpu" {
		t.Errorf("Describe's devices: %+v; want the CPU first", d.Devices)
	}
	if d.GPUFallback != nil {
		t.Errorf("gpu_fallback: %q; want null", *d.GPUFallback)
	}
	within10Percent(t, planned.Total, d.Memory)
	if text, _, err := e.Complete(greedy("Once upon a time", 4)); err != nil || text == "" {
		t.Errorf("Complete on the CPU: %q, %v", text, err)
	}
}

// This library is the default build: its CPU code is built in, so there are no modules to
// load (SetBackendDir is refused naming the dynamic-backends feature) and Describe says so.
func TestSetBackendDirRefusedInTheStaticBuild(t *testing.T) {
	err := rigllama.SetBackendDir(os.TempDir())
	var rerr *rigllama.Error
	if !errors.As(err, &rerr) || !errors.Is(err, rigllama.StatusInvalidArgument) || !strings.Contains(rerr.Message, "dynamic-backends") {
		t.Fatalf("SetBackendDir: %v; want StatusInvalidArgument naming dynamic-backends", err)
	}
}

func TestDescribeCPUBackend(t *testing.T) {
	d := describe(t, engine(t))
	if d.CPUBackend.Variant != "built-in" || d.CPUBackend.Module != "" || len(d.CPUBackend.Features) == 0 {
		t.Errorf("Describe's cpu_backend: %+v; want variant built-in, no module, its features", d.CPUBackend)
	}
}

// A context that cannot end takes the C callback path, one that can takes the job path: both
// deliver the text Complete returns.
func TestStream(t *testing.T) {
	e := engine(t)
	request := greedy("The three primary colors are", 16)
	want, _, err := e.Complete(request)
	if err != nil {
		t.Fatal(err)
	}
	cancellable, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
	}{{"context.Background", context.Background()}, {"a cancellable context", cancellable}} {
		t.Run(tc.name, func(t *testing.T) {
			var text strings.Builder
			pieces := 0
			usage, err := e.Stream(tc.ctx, request, func(piece string) bool {
				text.WriteString(piece)
				pieces++
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			if text.String() != want || pieces == 0 {
				t.Errorf("streamed %q in %d pieces, Complete returned %q", text.String(), pieces, want)
			}
			if usage.CompletionTokens == 0 || usage.CompletionTokens > 16 || usage.ImageTokens != 0 ||
				(usage.FinishReason != rigllama.FinishLength && usage.FinishReason != rigllama.FinishStop) {
				t.Errorf("usage %+v", usage)
			}
		})
	}
}

// onPiece returning false stops the reply on both paths: FinishCallback, no error.
func TestStreamStoppedByCallback(t *testing.T) {
	e := engine(t)
	cancellable, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, ctx := range []context.Context{context.Background(), cancellable} {
		pieces := 0
		usage, err := e.Stream(ctx, greedy("Once upon a time", 64), func(string) bool {
			pieces++
			return false
		})
		if err != nil || pieces != 1 || usage.FinishReason != rigllama.FinishCallback || usage.CompletionTokens >= 64 {
			t.Errorf("stopped after the first piece: %d pieces, usage %+v, %v", pieces, usage, err)
		}
	}
}

// A panic in onPiece stops generation and reaches the caller of Stream, on both paths.
func TestStreamPanic(t *testing.T) {
	e := engine(t)
	cancellable, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, ctx := range []context.Context{context.Background(), cancellable} {
		func() {
			defer func() {
				if p := recover(); p != "boom" {
					t.Errorf("recovered %v, want the callback's panic", p)
				}
			}()
			e.Stream(ctx, greedy("Once upon a time", 64), func(string) bool { panic("boom") })
			t.Error("Stream returned after its callback panicked")
		}()
	}
	if _, _, err := e.Complete(greedy("Two plus two is", 4)); err != nil {
		t.Errorf("the engine serves a request after the panics: %v", err)
	}
}

// Cancelling the context mid-reply cancels that request only, promptly.
func TestStreamContextCancel(t *testing.T) {
	e := engine(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cancelledAt time.Time
	pieces := 0
	_, err := e.Stream(ctx, greedy("Once upon a time", 256), func(string) bool {
		pieces++
		if pieces == 1 {
			cancelledAt = time.Now()
			cancel()
		}
		return true
	})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, rigllama.StatusCancelled) {
		t.Fatalf("Stream after cancel: %v; want context.Canceled and StatusCancelled", err)
	}
	if took := time.Since(cancelledAt); took > 2*time.Second || pieces > 64 {
		t.Errorf("the cancel took %v and %d pieces", took, pieces)
	}
	if _, _, err := e.Complete(greedy("Two plus two is", 4)); err != nil {
		t.Errorf("the engine serves a request after the cancel: %v", err)
	}
}

func TestStreamContextAlreadyEnded(t *testing.T) {
	e := engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	_, err := e.Stream(ctx, greedy("Once upon a time", 8), func(string) bool {
		t.Error("a piece arrived for a request whose context had ended")
		return true
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stream: %v, want context.DeadlineExceeded", err)
	}
}

// Submit's context cancels the job: its final event is ERROR/CANCELLED.
func TestSubmitContextCancel(t *testing.T) {
	e := engine(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	job, err := e.Submit(ctx, greedy("Once upon a time", 256))
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()
	deadline, stop := context.WithTimeout(context.Background(), 60*time.Second)
	defer stop()
	ev, err := job.Next(deadline)
	if err != nil || ev.Kind != rigllama.EventText {
		t.Fatalf("first event %+v, %v; want text", ev, err)
	}
	cancel()
	ev, _ = untilFinal(t, job)
	if ev.Kind != rigllama.EventError || ev.Status != rigllama.StatusCancelled {
		t.Fatalf("final event %+v, want ERROR/CANCELLED", ev)
	}
	if usage, err := job.Usage(); err != nil || usage.CompletionTokens >= 256 {
		t.Errorf("usage after the cancel: %+v, %v", usage, err)
	}
}

// Next's context bounds the wait only; the job goes on.
func TestJobNextContext(t *testing.T) {
	e := engine(t)
	if err := e.Pause(); err != nil {
		t.Fatal(err)
	}
	job, err := e.Submit(context.Background(), greedy("The guard pointed to the exit and said", 6))
	if err != nil {
		e.Resume()
		t.Fatal(err)
	}
	defer job.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	_, err = job.Next(ctx)
	if resumeErr := e.Resume(); resumeErr != nil {
		t.Fatal(resumeErr)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next on a paused engine: %v, want context.DeadlineExceeded", err)
	}
	if ev, text := untilFinal(t, job); ev.Kind != rigllama.EventDone || text == "" {
		t.Fatalf("after Resume the job ends with %+v and %q", ev, text)
	}
}

func TestJobCancel(t *testing.T) {
	e := engine(t)
	job, err := e.Submit(context.Background(), greedy("Once upon a time", 256))
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()
	if err := job.Cancel(); err != nil {
		t.Fatal(err)
	}
	if ev, _ := untilFinal(t, job); ev.Kind != rigllama.EventError || ev.Status != rigllama.StatusCancelled {
		t.Fatalf("final event %+v, want ERROR/CANCELLED", ev)
	}
	job.Close()
	if err := job.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
}

func TestEmbed(t *testing.T) {
	e := engine(t)
	var vectors [3][]float32
	for i, text := range []string{"The cat sat on the mat.", "A cat was sitting on the mat.",
		"Quarterly tax filings are due in April."} {
		var err error
		if vectors[i], err = e.Embed(text); err != nil {
			t.Fatal(err)
		}
	}
	dot := func(a, b []float32) (sum float64) {
		for i := range a {
			sum += float64(a[i]) * float64(b[i])
		}
		return sum
	}
	if norm := math.Sqrt(dot(vectors[0], vectors[0])); len(vectors[0]) == 0 || math.Abs(norm-1) > 1e-3 {
		t.Errorf("%d dimensions with norm %f, want L2-normalised", len(vectors[0]), norm)
	}
	if similar, unrelated := dot(vectors[0], vectors[1]), dot(vectors[0], vectors[2]); similar <= unrelated {
		t.Errorf("cat/cat %.3f is not above cat/tax %.3f", similar, unrelated)
	}
}

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

func messagesJSON(t *testing.T, messages ...message) string {
	b, err := json.Marshal(messages)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A "save game": a snapshot of one turn, a damaged copy refused, the whole one loaded, the
// next turn served from it.
func TestSnapshot(t *testing.T) {
	e := engine(t)
	turn := rigllama.NewRequest("")
	turn.MessagesJSON = messagesJSON(t, message{"user", "Name three rivers in Europe."})
	turn.MaxTokens = 8
	turn.Temperature = 0
	reply, _, err := e.Complete(turn)
	if err != nil {
		t.Fatal(err)
	}
	next := turn
	next.MessagesJSON = messagesJSON(t, message{"user", "Name three rivers in Europe."},
		message{"assistant", reply}, message{"user", "Which is the longest?"})
	snapshot, err := e.SaveSnapshot(next)
	if err != nil || len(snapshot) == 0 {
		t.Fatalf("SaveSnapshot: %d bytes, %v", len(snapshot), err)
	}
	if err := e.LoadSnapshot(snapshot[:len(snapshot)-1]); !errors.Is(err, rigllama.StatusInvalidArgument) {
		t.Errorf("a truncated snapshot: %v, want StatusInvalidArgument", err)
	}
	if err := e.LoadSnapshot(snapshot); err != nil {
		t.Fatal(err)
	}
	if _, usage, err := e.Complete(next); err != nil || usage.CachedPromptTokens == 0 {
		t.Errorf("the next turn reused %d of %d prompt tokens (%v)", usage.CachedPromptTokens, usage.PromptTokens, err)
	}
}

// Two jobs on an NSeq 2 engine run at once; a pause while both run holds them.
func TestTwoJobsAtOnce(t *testing.T) {
	e, err := rigllama.OpenWith(modelPath(t), rigllama.Options{NSeq: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Pause(); err != nil { // both start together when it resumes
		t.Fatal(err)
	}
	var jobs [2]*rigllama.Job
	for i, prompt := range []string{"The blacksmith told a long story about", "The guard pointed to the exit and said"} {
		request := greedy(prompt, 12)
		request.Priority = int32(10 * i)
		if jobs[i], err = e.Submit(context.Background(), request); err != nil {
			t.Fatal(err)
		}
		defer jobs[i].Close()
	}
	if err := e.Resume(); err != nil {
		t.Fatal(err)
	}
	var texts [2]int
	var done [2]bool
	paused := false
	deadline := time.Now().Add(60 * time.Second)
	for !(done[0] && done[1]) && time.Now().Before(deadline) {
		for i, job := range jobs {
			for !done[i] {
				ev, err := job.Poll(0)
				if err != nil {
					t.Fatal(err)
				}
				if ev.Kind == rigllama.EventNone {
					break
				}
				if ev.Kind == rigllama.EventText {
					texts[i]++
					continue
				}
				done[i] = true
				if usage, _ := job.Usage(); ev.Kind != rigllama.EventDone || usage.CompletionTokens != 12 {
					t.Errorf("job %d ended with %+v after %d tokens", i, ev, usage.CompletionTokens)
				}
			}
		}
		if !paused && texts[0] > 0 && texts[1] > 0 {
			paused = true
			if done[0] || done[1] {
				t.Error("one job ended before the other started")
			}
			if err := e.Pause(); err != nil {
				t.Fatal(err)
			}
			if err := e.Resume(); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Millisecond)
	}
	if !paused || !done[0] || !done[1] {
		t.Errorf("both running: %v, done: %v", paused, done)
	}
}

// A grammar decides Chat's reply; ApplyTemplate shows the tools; a grammar beside tools the
// model must call is refused.
func TestGrammarAndTools(t *testing.T) {
	e := engine(t)
	question := rigllama.NewRequest("Is the sky blue?")
	question.Grammar = `root ::= ("yes" | "no") "."`
	question.Reasoning = rigllama.ReasoningOff
	question.MaxTokens = 8
	question.Temperature = 0
	reply, usage, err := e.Chat(question)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Role      string            `json:"role"`
		Content   *string           `json:"content"`
		ToolCalls []json.RawMessage `json:"tool_calls"`
	}
	if err := json.Unmarshal([]byte(reply), &m); err != nil || m.Role != "assistant" || m.Content == nil ||
		(*m.Content != "yes." && *m.Content != "no.") || len(m.ToolCalls) != 0 || usage.FinishReason != rigllama.FinishStop {
		t.Errorf("Chat with a grammar: %s (finish reason %d, %v)", reply, usage.FinishReason, err)
	}

	ask := rigllama.NewRequest("What is the weather in Paris?")
	ask.ToolsJSON = `[{"type":"function","function":{"name":"get_weather","description":"Weather in a city",` +
		`"parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]`
	ask.ToolChoice = rigllama.ToolChoiceRequired
	if prompt, err := e.ApplyTemplate(ask); err != nil || !strings.Contains(prompt, "get_weather") {
		t.Errorf("ApplyTemplate: %d characters without the tool (%v)", len(prompt), err)
	}
	ask.Grammar = `root ::= "a"`
	if _, _, err := e.Chat(ask); !errors.Is(err, rigllama.StatusInvalidArgument) {
		t.Errorf("a grammar beside required tools: %v, want StatusInvalidArgument", err)
	}
}

// With NLogprobs 3 a job sends EventLogprobs; at temperature 0 each chosen token is the first
// of its alternatives.
func TestLogprobs(t *testing.T) {
	e := engine(t)
	request := greedy("The capital of France is", 8)
	request.NLogprobs = 3
	job, err := e.Submit(context.Background(), request)
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()
	type logprob struct {
		Token       string    `json:"token"`
		ID          int32     `json:"id"`
		Logprob     float64   `json:"logprob"`
		TopLogprobs []logprob `json:"top_logprobs"`
	}
	var entries []logprob
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var ev rigllama.Event
	for !ev.Final() {
		if ev, err = job.Next(ctx); err != nil {
			t.Fatal(err)
		}
		if ev.Kind == rigllama.EventLogprobs {
			var batch []logprob
			if err := json.Unmarshal([]byte(ev.Text), &batch); err != nil {
				t.Fatalf("LOGPROBS text %q: %v", ev.Text, err)
			}
			entries = append(entries, batch...)
		}
	}
	if ev.Kind != rigllama.EventDone || len(entries) == 0 {
		t.Fatalf("final %+v after %d entries", ev, len(entries))
	}
	for _, entry := range entries {
		top := entry.TopLogprobs
		if entry.Logprob > 0 || len(top) < 1 || len(top) > 3 || top[0].ID != entry.ID || top[0].Token != entry.Token {
			t.Errorf("entry %+v", entry)
		}
		for i := 1; i < len(top); i++ {
			if top[i].Logprob > top[i-1].Logprob {
				t.Errorf("alternatives out of order: %+v", top)
			}
		}
	}
}

// DraftMax 8 guesses tokens from a prompt that repeats itself; without it nothing is guessed.
func TestPromptLookup(t *testing.T) {
	e := engine(t)
	prompt := "Repeat exactly: the quick brown fox jumps over the lazy dog. the quick brown fox jumps over the lazy dog."
	for _, tc := range []struct {
		draftMax uint32
		guesses  bool
	}{{0, false}, {8, true}} {
		t.Run(fmt.Sprintf("DraftMax %d", tc.draftMax), func(t *testing.T) {
			request := greedy(prompt, 48)
			request.DraftMax = tc.draftMax
			_, usage, err := e.Complete(request)
			if err != nil {
				t.Fatal(err)
			}
			if (usage.DraftedTokens > 0) != tc.guesses || usage.AcceptedTokens > usage.DraftedTokens {
				t.Errorf("drafted %d, accepted %d", usage.DraftedTokens, usage.AcceptedTokens)
			}
		})
	}
}

// Text -> ids -> text is exact in every script, and with TokenizeRawPrompt the ids are as many
// as CountTokens says for the same raw prompt.
func TestTokenizeRoundTrip(t *testing.T) {
	e := engine(t)
	for _, text := range []string{"Hello, world!", "Übergrößenträger naïve café", "日本語のテキスト", "emoji 🦀🚀",
		"Привет, мир! مرحبا بالعالم", "<start_of_turn>user\nHi<end_of_turn>\n"} {
		t.Run(text, func(t *testing.T) {
			ids, err := e.Tokenize(text, rigllama.TokenizeRawPrompt)
			if err != nil || len(ids) == 0 {
				t.Fatalf("Tokenize: %v, %v", ids, err)
			}
			if back, err := e.Detokenize(ids, rigllama.TokenizeRawPrompt); err != nil || back != text {
				t.Errorf("Detokenize(%v) = %q, %v", ids, back, err)
			}
			if counted, err := e.CountTokens(greedy(text, 1)); err != nil || int(counted) != len(ids) {
				t.Errorf("CountTokens = %d (%v), Tokenize made %d ids", counted, err, len(ids))
			}
		})
	}
}

// Text that makes more ids than Tokenize's first buffer (len/2+8) holds comes back whole.
func TestTokenizeGrowsItsBuffer(t *testing.T) {
	e := engine(t)
	digits := strings.Repeat("0123456789", 20) // one id per digit with this model
	ids, err := e.Tokenize(digits, rigllama.TokenizeRawPrompt)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) <= len(digits)/2+8 {
		t.Fatalf("%d ids for %d digits: the first buffer was enough, nothing grew", len(ids), len(digits))
	}
	if back, err := e.Detokenize(ids, rigllama.TokenizeRawPrompt); err != nil || back != digits {
		t.Errorf("Detokenize: %q, %v", back, err)
	}
	if counted, err := e.CountTokens(greedy(digits, 1)); err != nil || int(counted) != len(ids) {
		t.Errorf("CountTokens = %d (%v), Tokenize made %d ids", counted, err, len(ids))
	}
}

// Without TokenizeParseSpecial special-token text is plain text; an unknown flag is refused.
func TestTokenizeFlags(t *testing.T) {
	e := engine(t)
	special, err := e.Tokenize("<start_of_turn>", rigllama.TokenizeParseSpecial)
	if err != nil || len(special) != 1 {
		t.Errorf("with TokenizeParseSpecial: %v, %v; want one id", special, err)
	}
	plain, err := e.Tokenize("<start_of_turn>", 0)
	if err != nil || len(plain) < 2 {
		t.Errorf("without flags: %v, %v; want the text's pieces", plain, err)
	}
	if back, err := e.Detokenize(plain, 0); err != nil || back != "<start_of_turn>" {
		t.Errorf("Detokenize(%v, 0) = %q, %v", plain, back, err)
	}
	if text, err := e.Detokenize(nil, rigllama.TokenizeRawPrompt); err != nil || text != "" {
		t.Errorf("Detokenize(nil) = %q, %v; want \"\"", text, err)
	}
	var rerr *rigllama.Error
	if _, err := e.Tokenize("x", 4); !errors.As(err, &rerr) || rerr.Status != rigllama.StatusInvalidArgument ||
		!strings.Contains(rerr.Message, "0x4") {
		t.Errorf("flags 4: %v; want StatusInvalidArgument naming 0x4", err)
	}
	if _, err := e.Tokenize("a\x00b", rigllama.TokenizeRawPrompt); !errors.Is(err, rigllama.StatusInvalidArgument) {
		t.Errorf("a NUL byte: %v; want StatusInvalidArgument", err)
	}
}

// An id outside the vocabulary is refused, naming its index and value.
func TestDetokenizeRefusesAnIdOutsideTheVocabulary(t *testing.T) {
	e := engine(t)
	_, err := e.Detokenize([]int32{2, 10_000_000}, rigllama.TokenizeRawPrompt)
	var rerr *rigllama.Error
	if !errors.As(err, &rerr) || !errors.Is(err, rigllama.StatusInvalidArgument) ||
		!strings.Contains(rerr.Message, "tokens[1] = 10000000") {
		t.Fatalf("Detokenize: %v; want StatusInvalidArgument naming tokens[1] = 10000000", err)
	}
}

// PromptTokens: the raw prompt's ids give the reply its text gives, greedily.
func TestPromptTokens(t *testing.T) {
	e := engine(t)
	const prompt = "The old lighthouse keeper looked out at the storm and"
	// Each from an empty cache: a prompt whose first tokens are cached evaluates only its last
	// one, whose logits round differently from a batch's, and this prompt has a near tie.
	if err := e.Reset(); err != nil {
		t.Fatal(err)
	}
	want, _, err := e.Complete(greedy(prompt, 16))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := e.Tokenize(prompt, rigllama.TokenizeRawPrompt)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Reset(); err != nil {
		t.Fatal(err)
	}
	request := greedy("", 16)
	request.PromptTokens = ids
	got, usage, err := e.Complete(request)
	if err != nil || got != want || int(usage.PromptTokens) != len(ids) {
		t.Errorf("from ids %q (%d prompt tokens, %v), from the text %q", got, usage.PromptTokens, err, want)
	}

	request.PromptTokens = []int32{ids[0], 10_000_000}
	var rerr *rigllama.Error
	if _, _, err := e.Complete(request); !errors.As(err, &rerr) || rerr.Status != rigllama.StatusInvalidArgument ||
		!strings.Contains(rerr.Message, "prompt_tokens[1] = 10000000") {
		t.Errorf("an id outside the vocabulary: %v; want StatusInvalidArgument naming prompt_tokens[1]", err)
	}
	request.PromptTokens = []int32{}
	if _, _, err := e.Complete(request); !errors.Is(err, rigllama.StatusInvalidArgument) {
		t.Errorf("an empty, non-nil PromptTokens: %v; want StatusInvalidArgument", err)
	}
	request.PromptTokens = ids
	request.Prompt = "and text too"
	if _, _, err := e.Complete(request); !errors.Is(err, rigllama.StatusInvalidArgument) {
		t.Errorf("PromptTokens beside Prompt: %v; want StatusInvalidArgument", err)
	}
}

// fimModelPath returns $RIGLLAMA_FIM_MODEL, the model with fill-in-the-middle tokens; unset, it
// makes one from $RIGLLAMA_MODEL with the repository's scripts/make-fim-model (into the cache),
// and skips the test where that script is not at hand.
func fimModelPath(t *testing.T) string {
	t.Helper()
	if path := os.Getenv("RIGLLAMA_FIM_MODEL"); path != "" {
		return path
	}
	model := modelPath(t)
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "make-fim-model"))
	if _, statErr := os.Stat(script); err != nil || statErr != nil {
		t.Skip("RIGLLAMA_FIM_MODEL is not set and scripts/make-fim-model is not at hand: set it to a model " +
			"with FIM tokens (in the rigllama repository, scripts/make-fim-model MODEL DEST makes one)")
	}
	cache := os.Getenv("RIGLLAMA_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		cache = filepath.Join(home, ".cache", "rigllama")
	}
	cmd := exec.Command(script, model, filepath.Join(cache, "models", "fim-gemma3-270m.gguf"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/make-fim-model: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// infillLayout is llama-server's /infill layout on the FIM model (scripts/make-fim-model gives it
// FIM_PRE..FIM_SEP as ids 6..10, and FIM_REP/FIM_SEP add a repository header):
// [FIM_REP]myproject\n[FIM_SEP]filename\n[BOS][FIM_PRE]prefix[FIM_SUF]suffix[FIM_MID].
func infillLayout(t *testing.T, e *rigllama.Engine, prefix, suffix string) []int32 {
	t.Helper()
	plain := func(text string) []int32 {
		ids, err := e.Tokenize(text, 0)
		if err != nil {
			t.Fatalf("Tokenize(%q, 0): %v", text, err)
		}
		return ids
	}
	ids := append([]int32{9}, plain("myproject\n")...)
	ids = append(append(ids, 10), plain("filename\n")...)
	ids = append(append(ids, 2, 6), plain(prefix)...)
	ids = append(append(ids, 7), plain(suffix)...)
	return append(ids, 8)
}

const (
	infillPrefix = "def add(a, b):\n    "
	infillSuffix = "\n\nprint(add(1, 2))\n"
)

// A suffix on a model without FIM tokens is refused, naming why.
func TestInfillRefusedWithoutFIMTokens(t *testing.T) {
	e := engine(t)
	request := greedy(infillPrefix, 8)
	request.Suffix = infillSuffix
	var rerr *rigllama.Error
	if _, _, err := e.Complete(request); !errors.As(err, &rerr) || rerr.Status != rigllama.StatusInvalidArgument ||
		!strings.Contains(rerr.Message, "fill-in-the-middle tokens") {
		t.Errorf("Complete: %v; want StatusInvalidArgument naming the missing fill-in-the-middle tokens", err)
	}
}

// On the FIM model the request is llama-server's /infill layout token for token (CountTokens,
// ApplyTemplate), an empty prefix or suffix included, and the middle comes back.
func TestInfill(t *testing.T) {
	path := fimModelPath(t)
	e, err := rigllama.OpenWith(path, rigllama.Options{NCtx: 1024})
	if err != nil {
		t.Fatalf("OpenWith(%q): %v", path, err)
	}
	defer e.Close()
	request := greedy(infillPrefix, 8)
	request.Suffix = infillSuffix
	layout := infillLayout(t, e, infillPrefix, infillSuffix)
	if n, err := e.CountTokens(request); err != nil || int(n) != len(layout) {
		t.Errorf("CountTokens = %d, %v; the layout has %d tokens", n, err, len(layout))
	}
	shown, err := e.ApplyTemplate(request)
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := e.Tokenize(shown, rigllama.TokenizeParseSpecial); err != nil || fmt.Sprint(ids) != fmt.Sprint(layout) {
		t.Errorf("ApplyTemplate gives %q = %v (%v); want the layout %v", shown, ids, err, layout)
	}

	for _, c := range []struct{ name, prefix, suffix string }{
		{"empty prefix", "", infillSuffix}, {"empty suffix", infillPrefix, ""},
	} {
		r := greedy(c.prefix, 8)
		r.Suffix, r.Infill = c.suffix, true
		want := infillLayout(t, e, c.prefix, c.suffix)
		if n, err := e.CountTokens(r); err != nil || int(n) != len(want) {
			t.Errorf("%s: CountTokens = %d, %v; the layout has %d tokens", c.name, n, err, len(want))
		}
	}

	notRaw := request
	notRaw.Raw = false
	if _, err := e.CountTokens(notRaw); !errors.Is(err, rigllama.StatusInvalidArgument) ||
		!strings.Contains(err.Error(), "raw_prompt 1") {
		t.Errorf("a suffix without Raw: %v; want StatusInvalidArgument naming raw_prompt 1", err)
	}

	middle, usage, err := e.Complete(request)
	if err != nil || middle == "" || int(usage.PromptTokens) != len(layout) || usage.DroppedTokens != 0 {
		t.Errorf("Complete: %q, %+v, %v; want the middle, %d prompt tokens, none dropped", middle, usage, err, len(layout))
	}
	t.Logf("%q + %q + %q", infillPrefix, middle, infillSuffix)
}

// A chat model is not a reranker; no documents give no scores; on $RIGLLAMA_RERANK_MODEL (when
// set) each document gets one finite score.
func TestRerank(t *testing.T) {
	e := engine(t)
	documents := []string{"A cat is a small furry animal that purrs.", "Granite is a hard igneous rock.",
		"Cats sleep for most of the day."}
	var rerr *rigllama.Error
	if scores, err := e.Rerank("what is a cat?", documents); !errors.As(err, &rerr) ||
		rerr.Status != rigllama.StatusInvalidArgument || !strings.Contains(rerr.Message, "not a reranker") || scores != nil {
		t.Errorf("Rerank on a chat model: %v, %v; want StatusInvalidArgument, not a reranker", scores, err)
	}
	if scores, err := e.Rerank("what is a cat?", nil); err != nil || scores == nil || len(scores) != 0 {
		t.Errorf("Rerank with no documents: %#v, %v; want an empty slice", scores, err)
	}

	path := os.Getenv("RIGLLAMA_RERANK_MODEL")
	if path == "" {
		t.Log("RIGLLAMA_RERANK_MODEL is not set: the scores of a reranker are not checked")
		return
	}
	reranker, err := rigllama.OpenWith(path, rigllama.Options{NCtx: 1024})
	if err != nil {
		t.Fatalf("OpenWith(%q): %v", path, err)
	}
	defer reranker.Close()
	scores, err := reranker.Rerank("what is a cat?", documents)
	if err != nil || len(scores) != len(documents) {
		t.Fatalf("Rerank: %v, %v; want %d scores", scores, err, len(documents))
	}
	for i, score := range scores {
		if math.IsNaN(float64(score)) || math.IsInf(float64(score), 0) {
			t.Errorf("scores[%d] = %v, not finite", i, score)
		}
	}
	t.Logf("scores %v", scores)
}

// completeFromEmpty runs r on an emptied cache: greedy text is reproducible only from the
// same cache state.
func completeFromEmpty(t *testing.T, e *rigllama.Engine, r rigllama.Request) string {
	t.Helper()
	if err := e.Reset(); err != nil {
		t.Fatal(err)
	}
	text, _, err := e.Complete(r)
	if err != nil {
		t.Fatalf("Complete (Lora %v): %v", r.Lora, err)
	}
	return text
}

// Adaptive-p is off by default; a seeded request with AdaptiveTarget 0.3 gives the same text
// twice, and not the text it gives without; a target outside [0, 1] is refused. Each run from
// an empty cache.
func TestAdaptiveP(t *testing.T) {
	e := engine(t)
	request := greedy("Once upon a time", 32)
	if request.AdaptiveTarget >= 0 || math.Abs(float64(request.AdaptiveDecay)-0.9) > 1e-6 {
		t.Errorf("NewRequest: AdaptiveTarget %v, AdaptiveDecay %v; want off (-1) and 0.90",
			request.AdaptiveTarget, request.AdaptiveDecay)
	}
	request.Temperature, request.TopK, request.TopP, request.MinP, request.Seed = 1, 0, 1, 0, 1234
	run := func(r rigllama.Request) string { return completeFromEmpty(t, e, r) }
	plain := run(request)
	request.AdaptiveTarget = 0.3
	first, again := run(request), run(request)
	if first != again || first == plain {
		t.Errorf("AdaptiveTarget 0.3: %q then %q; want the same text twice, not %q", first, again, plain)
	}
	request.AdaptiveTarget = 1.5
	var rerr *rigllama.Error
	if _, _, err := e.Complete(request); !errors.As(err, &rerr) || rerr.Status != rigllama.StatusInvalidArgument ||
		!strings.Contains(rerr.Message, "adaptive_target") {
		t.Errorf("AdaptiveTarget 1.5: %v; want StatusInvalidArgument naming adaptive_target", err)
	}
}

// ReasoningBudget is unlimited (-1) by default and -2 is refused naming it; on the default
// model, whose template has no thinking block, a budget of 8 has nothing to limit: a greedy
// chat reply is the one it gives without. Each run from an empty cache.
func TestReasoningBudget(t *testing.T) {
	e := engine(t)
	request := rigllama.NewRequest("Name a colour.")
	if request.ReasoningBudget != -1 {
		t.Errorf("NewRequest: ReasoningBudget %d; want -1 (unlimited)", request.ReasoningBudget)
	}
	request.MaxTokens, request.Temperature = 6, 0
	run := func(r rigllama.Request) (string, rigllama.Usage) {
		t.Helper()
		if err := e.Reset(); err != nil {
			t.Fatal(err)
		}
		text, usage, err := e.Complete(r)
		if err != nil {
			t.Fatalf("Complete (ReasoningBudget %d): %v", r.ReasoningBudget, err)
		}
		return text, usage
	}
	plain, plainUsage := run(request)
	request.ReasoningBudget = 8
	budgeted, usage := run(request)
	if budgeted == "" || budgeted != plain || usage.CompletionTokens != plainUsage.CompletionTokens ||
		usage.FinishReason != plainUsage.FinishReason {
		t.Errorf("ReasoningBudget 8: %q (%d tokens, %v); want the reply without a budget, %q (%d tokens, %v)",
			budgeted, usage.CompletionTokens, usage.FinishReason, plain, plainUsage.CompletionTokens,
			plainUsage.FinishReason)
	}
	request.ReasoningBudget = -2
	var rerr *rigllama.Error
	if _, _, err := e.Complete(request); !errors.As(err, &rerr) || rerr.Status != rigllama.StatusInvalidArgument ||
		!strings.Contains(rerr.Message, "reasoning_budget -2") {
		t.Errorf("ReasoningBudget -2: %v; want StatusInvalidArgument naming reasoning_budget -2", err)
	}
}

// loraDir returns $RIGLLAMA_LORA_DIR, the random LoRA adapters for the default model (else made
// with scripts/make-lora-adapter).
func loraDir(t *testing.T) string {
	t.Helper()
	return fixtureDir(t, "RIGLLAMA_LORA_DIR", "make-lora-adapter", "lora", "LoRA adapters")
}

// Request.Lora on the shared engine, with the adapter added at engine-wide scale 0: the greedy
// text is the base model's; the adapter at 1 for one request changes it, and is exactly the
// text scale 1 engine-wide gives a request with Lora nil; with it at 1 engine-wide, an empty
// non-nil Lora gives the base text again; an unknown id and a scale of 1000 are refused naming
// them. Each greedy run from an empty cache (greedy text repeats only from the same cache
// state). The adapter is removed after (snapshots are refused while one is applied).
func TestPerRequestLora(t *testing.T) {
	dir := loraDir(t)
	e := engine(t)
	request := greedy("The capital of France is", 16)
	if request.Lora != nil {
		t.Errorf("NewRequest: Lora %v; want nil (the engine-wide adapters)", request.Lora)
	}
	id, err := e.AddLora(filepath.Join(dir, "gemma3-270m-lora.gguf"), 0)
	if err != nil {
		t.Fatalf("AddLora: %v", err)
	}
	t.Cleanup(func() {
		if err := e.RemoveLora(id); err != nil {
			t.Errorf("RemoveLora(%d): %v", id, err)
		}
	})
	run := func(r rigllama.Request) string { return completeFromEmpty(t, e, r) }
	base := run(request)
	own := request
	own.Lora = []rigllama.LoraScale{{ID: id, Scale: 1}}
	adapted := run(own)
	t.Logf("base %q; the adapter at 1 for the request %q", base, adapted)
	if adapted == base {
		t.Errorf("Lora [{%d 1}] with the engine-wide scale 0: %q, the base text; want it changed", id, adapted)
	}
	if err := e.SetLoraScale(id, 1); err != nil {
		t.Fatalf("SetLoraScale(%d, 1): %v", id, err)
	}
	if wide := run(request); wide != adapted {
		t.Errorf("engine-wide scale 1, Lora nil: %q; want the per-request text %q", wide, adapted)
	}
	none := request
	none.Lora = []rigllama.LoraScale{}
	if without := run(none); without != base {
		t.Errorf("Lora empty (no adapter) with the engine-wide scale 1: %q; want the base text %q", without, base)
	}
	for _, tc := range []struct {
		name   string
		lora   []rigllama.LoraScale
		needle string
	}{
		{"an unknown id", []rigllama.LoraScale{{ID: 77, Scale: 1}}, "lora_ids[0] = 77"},
		{"a scale of 1000", []rigllama.LoraScale{{ID: id, Scale: 1000}}, "lora_scales[0]"},
	} {
		bad := request
		bad.Lora = tc.lora
		var rerr *rigllama.Error
		if _, _, err := e.Complete(bad); !errors.As(err, &rerr) || rerr.Status != rigllama.StatusInvalidArgument ||
			!strings.Contains(rerr.Message, tc.needle) {
			t.Errorf("%s: %v; want StatusInvalidArgument naming %s", tc.name, err, tc.needle)
		}
	}
}

// fixtureDir returns $variable, a directory of the repository's random fixtures for the
// default model; unset, it makes them with the repository's scripts/<script> into the cache's
// models/<subdir>, and skips the test where that script is not at hand.
func fixtureDir(t *testing.T, variable, script, subdir, what string) string {
	t.Helper()
	if dir := os.Getenv(variable); dir != "" {
		return dir
	}
	model := modelPath(t)
	path, err := filepath.Abs(filepath.Join("..", "..", "scripts", script))
	if _, statErr := os.Stat(path); err != nil || statErr != nil {
		t.Skip(variable + " is not set and scripts/" + script + " is not at hand: set it to a directory of " +
			what + " for the model (in the rigllama repository, scripts/" + script + " MODEL DIR makes them)")
	}
	cache := os.Getenv("RIGLLAMA_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		cache = filepath.Join(home, ".cache", "rigllama")
	}
	dir := filepath.Join(cache, "models", subdir)
	cmd := exec.Command(path, model, dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("scripts/%s: %v", script, err)
	}
	return dir
}

// controlVectorDir returns $RIGLLAMA_CONTROL_VECTOR_DIR, the random control vectors for the
// default model (else made with scripts/make-control-vector).
func controlVectorDir(t *testing.T) string {
	t.Helper()
	return fixtureDir(t, "RIGLLAMA_CONTROL_VECTOR_DIR", "make-control-vector", "control-vectors", "control vectors")
}

// On an engine of its own: strength 0 gives exactly the base greedy text, strength 1 changes
// it, a vector for a 64-wide model is refused naming this model's width, and clearing gives
// the base text again. Each greedy run from an empty cache (a cached prefix can round
// differently).
func TestControlVector(t *testing.T) {
	dir := controlVectorDir(t)
	path := modelPath(t)
	e, err := rigllama.OpenWith(path, rigllama.Options{NCtx: 1024})
	if err != nil {
		t.Fatalf("OpenWith(%q): %v", path, err)
	}
	defer e.Close()
	vector := filepath.Join(dir, "control-vector-random.gguf")
	request := greedy("The lighthouse keeper", 16)
	run := func() string {
		t.Helper()
		if err := e.Reset(); err != nil {
			t.Fatal(err)
		}
		text, _, err := e.Complete(request)
		if err != nil {
			t.Fatalf("Complete: %v", err)
		}
		return text
	}
	base := run()
	if err := e.SetControlVector(vector, 0, 0, 0); err != nil {
		t.Fatalf("SetControlVector(strength 0): %v", err)
	}
	if same := run(); same != base {
		t.Errorf("strength 0: %q; want the base text %q", same, base)
	}
	if err := e.SetControlVector(vector, 1, 0, 0); err != nil {
		t.Fatalf("SetControlVector(strength 1): %v", err)
	}
	steered := run()
	if steered == base {
		t.Errorf("strength 1 left the text as it was: %q", steered)
	}
	t.Logf("base %q; steered %q", base, steered)

	var rerr *rigllama.Error
	err = e.SetControlVector(filepath.Join(dir, "control-vector-wrong-width.gguf"), 1, 0, 0)
	if !errors.As(err, &rerr) || rerr.Status != rigllama.StatusInvalidArgument || !strings.Contains(rerr.Message, "640 wide") {
		t.Errorf("a vector for another width: %v; want StatusInvalidArgument naming 640 wide", err)
	}
	if err := e.SetControlVector(vector, 1, 3, 99); !errors.Is(err, rigllama.StatusInvalidArgument) ||
		!strings.Contains(err.Error(), "layer range 3..99") {
		t.Errorf("layers 3..99: %v; want StatusInvalidArgument naming the range", err)
	}
	if err := e.ClearControlVector(); err != nil {
		t.Fatalf("ClearControlVector: %v", err)
	}
	if back := run(); back != base {
		t.Errorf("cleared: %q; want the base text %q", back, base)
	}
}
