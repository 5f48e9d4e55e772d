// A user of the rigllama Go module (bindings/go): streams a reply, which Ctrl-C cancels
// through the context; then gives a job two seconds and cancels it when they run out; then
// shows what a failed call's error carries. bindings/go's own tests (go test ./...) check the
// binding; this program shows it in use.
//
//	usage: rigllama-go MODEL.gguf [PROMPT]
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"time"

	rigllama "github.com/rigllama/rigllama/bindings/go"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: rigllama-go MODEL.gguf [PROMPT]")
		os.Exit(2)
	}
	prompt := "The lighthouse keeper climbed the stairs and"
	if len(os.Args) > 2 {
		prompt = os.Args[2]
	}
	fmt.Printf("rigllama %s from Go\n", rigllama.Version())

	// A failed call: an *Error with the library's status and message.
	_, err := rigllama.Open("/nonexistent/model.gguf")
	var rerr *rigllama.Error
	if errors.As(err, &rerr) && errors.Is(err, rigllama.StatusModelLoadFailed) {
		fmt.Printf("[error] status %s, message %q\n", rerr.Status, rerr.Message)
	} else {
		fmt.Println("unexpected:", err)
		os.Exit(1)
	}

	engine, err := rigllama.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer engine.Close()

	// Ctrl-C ends the context, which cancels the request (and only this one).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	request := rigllama.NewRequest(prompt)
	request.Raw = true
	request.MaxTokens = 32
	request.Temperature = 0
	fmt.Print("[stream] ", prompt)
	usage, err := engine.Stream(ctx, request, func(piece string) bool {
		fmt.Print(piece)
		return true
	})
	fmt.Println()
	switch {
	case errors.Is(err, context.Canceled):
		fmt.Println("[stream] cancelled")
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	default:
		fmt.Printf("[stream] %d prompt tokens, %d generated in %.0f ms\n",
			usage.PromptTokens, usage.CompletionTokens, usage.GenerationMs)
	}

	// A job with a deadline: polled as a frame loop would, cancelled when the time is up.
	timeout, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	long := rigllama.NewRequest("Once upon a time")
	long.Raw = true
	long.MaxTokens = 100000 // more than two seconds' worth
	job, err := engine.Submit(timeout, long)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer job.Close()
	pieces := 0
	for {
		ev, err := job.Next(context.Background())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if ev.Kind == rigllama.EventText {
			pieces++
			continue
		}
		if ev.Final() {
			fmt.Printf("[job] %d pieces, then %s: %s\n", pieces, ev.Status, ev.Message)
			if ev.Status != rigllama.StatusCancelled {
				os.Exit(1) // the deadline should have cancelled it
			}
			break
		}
	}
}
