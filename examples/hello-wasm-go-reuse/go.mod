module example.com/hello-wasm-go-reuse

go 1.26
