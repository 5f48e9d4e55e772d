module rigllamaexample

go 1.19

require github.com/rigllama/rigllama/bindings/go v0.0.0

// The module in this repository, not a published version: a program outside the repository
// runs `go get github.com/rigllama/rigllama/bindings/go@latest` instead.
replace github.com/rigllama/rigllama/bindings/go => ../bindings/go
