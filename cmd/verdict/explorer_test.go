package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/devnet"
)

// TestExplorerCommand runs `verdict explorer` against a devnet's node: it
// prints its URL, serves the overview and the built-in model's name on the
// models page, answers an unknown receipt with a 404 page, and refuses bad
// flags.
func TestExplorerCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a devnet")
	}
	d, err := devnet.Start(context.Background(), devnet.Options{Dir: t.TempDir(), Addr: "127.0.0.1:0", Threads: 1, BlockInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"explorer", "--node", d.RPC, "--addr", "127.0.0.1:0"}, &out, &errb) }()
	re := regexp.MustCompile(`verdict explorer: (http://\S+/explorer/) `)
	var url string
	for deadline := time.Now().Add(20 * time.Second); url == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			url = m[1]
		}
	}
	if url == "" {
		t.Fatalf("no URL printed: %q %q", out.String(), errb.String())
	}
	getPage := func(p string) (int, string) {
		resp, err := http.Get(url + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := getPage(""); code != 200 || !strings.Contains(body, "<h1>Overview</h1>") {
		t.Fatalf("overview: %d %.300s", code, body)
	}
	// The index reads the chain from block 1: the model the worker
	// registered is listed once the explorer reached that block.
	var body string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if _, body = getPage("models"); strings.Contains(body, d.Model.Name) {
			break
		}
	}
	if !strings.Contains(body, `data-field="name">`+d.Model.Name+`<`) {
		t.Fatalf("models page lacks %s: %.500s", d.Model.Name, body)
	}
	if code, _ := getPage("receipt/" + strings.Repeat("0", 64)); code != 404 {
		t.Fatalf("unknown receipt: %d", code)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("explorer exit %d: %s", code, errb.String())
	}
}

// TestExplorerBadFlags: `verdict explorer` refuses bad flags with a line
// naming the flag, before it reads a model or a node.
func TestExplorerBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"explorer", "--from", "0"}, "--from"},
		{[]string{"explorer", "extra"}, "unexpected argument"},
		{[]string{"explorer", "--model", "/nonexistent.gguf"}, "nonexistent"},
		{[]string{"explorer", "--client-rate", "0"}, "--client-rate"},
		{[]string{"explorer", "--client-rate", "-2"}, "--client-rate"},
		{[]string{"explorer", "--client-rate", "NaN"}, "--client-rate"},
		{[]string{"explorer", "--client-burst", "0"}, "--client-burst"},
		{[]string{"explorer", "--trusted-proxy", "10.0.0.1"}, "--trusted-proxy"},
	} {
		var e syncBuffer
		if code := run(context.Background(), c.args, io.Discard, &e); code == 0 || !strings.Contains(e.String(), "explorer") || !strings.Contains(e.String(), c.want) {
			t.Errorf("%v: exit %d, %q", c.args, code, e.String())
		}
	}
}
