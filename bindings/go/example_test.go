package rigllama_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	rigllama "github.com/rigllama/rigllama/bindings/go"
)

// Streams a reply; Ctrl-C cancels it.
func ExampleEngine_Stream() {
	engine, err := rigllama.Open("model.gguf")
	if err != nil {
		fmt.Fprintln(os.Stderr, err) // rigllama: the model could not be loaded: model file not found: model.gguf
		return
	}
	defer engine.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	request := rigllama.NewRequest("Write a haiku about the sea.")
	usage, err := engine.Stream(ctx, request, func(piece string) bool {
		fmt.Print(piece)
		return true
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err) // errors.Is(err, context.Canceled) after Ctrl-C
		return
	}
	fmt.Printf("\n%d tokens\n", usage.CompletionTokens)
}

// A job polled once per frame, never blocking the loop.
func ExampleJob_Poll() {
	engine, err := rigllama.Open("model.gguf")
	if err != nil {
		return
	}
	defer engine.Close()
	job, err := engine.Submit(context.Background(), rigllama.NewRequest("Greet the player."))
	if err != nil {
		return
	}
	defer job.Close()
	for frame := 0; ; frame++ {
		ev, err := job.Poll(0) // 0: never blocks
		if err != nil || ev.Final() {
			break
		}
		if ev.Kind == rigllama.EventText {
			fmt.Print(ev.Text)
		}
		// ... the rest of the frame ...
	}
}
