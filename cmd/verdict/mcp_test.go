package main

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestMCPCommand drives `verdict mcp` over its stdin and stdout with the
// SDK's client.
func TestMCPCommand(t *testing.T) {
	dir := sharedModelsDir(t)
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	old := mcpStdin
	mcpStdin = inR
	defer func() { mcpStdin = old }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"mcp", "--model", filepath.Join(dir, "stories260K.gguf"), "--threads", "1"}, outW, &errb)
		outW.Close()
	}()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "0"}, nil).Connect(ctx, &mcp.IOTransport{Reader: outR, Writer: inW}, nil)
	if err != nil {
		t.Fatalf("%v; stderr %s", err, errb.String())
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "generate", Arguments: map[string]any{"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0}})
	if err != nil || res.IsError {
		t.Fatalf("generate: %v %+v", err, res)
	}
	out, _ := res.StructuredContent.(map[string]any)
	if id, _ := out["receipt_id"].(string); len(id) != 64 || !strings.HasPrefix(out["text"].(string), ", there was") {
		t.Errorf("generate result %v", out)
	}
	cs.Close()
	inW.Close()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit status %d: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("mcp did not stop at the end of its input")
	}
}
