package rigllama

// This file holds only the exported callback: a file with //export may declare, but not
// define, C functions in its preamble.

/*
#include <stddef.h>
#include <stdint.h>
*/
import "C"

import "runtime/cgo"

// goTokenCallback is the stream callback. It runs on the thread that called Stream, with the
// cgo.Handle that Stream created; piece is valid only during the call, so it is copied.
//
//export goTokenCallback
func goTokenCallback(handle C.uintptr_t, piece *C.char, pieceLen C.size_t) (stop C.int32_t) {
	state := cgo.Handle(handle).Value().(*streamState)
	if state.panicked != nil {
		return 1
	}
	// A Go panic must not unwind through C frames: keep it for Stream to re-raise.
	defer func() {
		if p := recover(); p != nil {
			state.panicked = p
			stop = 1
		}
	}()
	if !state.onPiece(C.GoStringN(piece, C.int(pieceLen))) {
		return 1
	}
	return 0
}
