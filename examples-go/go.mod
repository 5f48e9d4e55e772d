module rigllamaexample

go 1.19
