package gateway

import (
	"io"
	"net/http"
	"testing"
)

// TestExplorerMount: the explorer is served without an API key under
// /explorer/ (and /explorer redirects there), while the API still asks
// for one.
func TestExplorerMount(t *testing.T) {
	explorer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "explorer "+r.URL.Path)
	})
	ts, _ := newServer(t, func(o *Options) {
		o.Auth = StaticKeys{"sk-good": "alice"}
		o.Explorer = explorer
	})
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, c := range []struct {
		path, want string
		status     int
	}{
		{"/explorer/", "explorer /explorer/", 200},
		{"/explorer/receipt/abc", "explorer /explorer/receipt/abc", 200},
		{"/explorer", "", http.StatusMovedPermanently},
		{"/v1/models", "", http.StatusUnauthorized},
	} {
		resp, err := noRedirect.Get(ts.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || (c.want != "" && string(b) != c.want) {
			t.Errorf("GET %s: %d %q, want %d %q", c.path, resp.StatusCode, b, c.status, c.want)
		}
		if c.status == http.StatusMovedPermanently && resp.Header.Get("Location") != ExplorerPath {
			t.Errorf("GET %s redirects to %q", c.path, resp.Header.Get("Location"))
		}
	}
}
