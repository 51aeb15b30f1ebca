module example.com/hello-wasm-go

go 1.26
