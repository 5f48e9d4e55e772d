module github.com/rigllama/rigllama/bindings/go

go 1.19
