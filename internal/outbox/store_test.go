package outbox

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStore saves, reloads, removes and gives up records; a corrupt file
// is an error naming it.
func TestStore(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := testRecord(t, 1), testRecord(t, 2), testRecord(t, 3)
	a.Attempts, a.RequestSteps = 3, 41
	if err := s.Save(a); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveAll([]Record{b, c}); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(Record{ReceiptID: "../x"}); err == nil {
		t.Fatal("saved a bad id")
	}
	s2, _ := OpenStore(dir)
	recs, err := s2.Load()
	if err != nil || len(recs) != 3 {
		t.Fatalf("loaded %d records: %v", len(recs), err)
	}
	for _, r := range recs {
		if r.ReceiptID == a.ReceiptID && (r.Attempts != 3 || r.RequestSteps != 41) {
			t.Fatalf("attempts %d, request steps %d after reload", r.Attempts, r.RequestSteps)
		}
	}
	if err := s.Remove(b.ReceiptID); err != nil {
		t.Fatal(err)
	}
	c.Failed = "no key"
	if err := s.Fail(c); err != nil {
		t.Fatal(err)
	}
	if recs, _ := s.Load(); len(recs) != 1 || recs[0].ReceiptID != a.ReceiptID {
		t.Fatalf("after remove and fail: %v", recs)
	}
	fb, err := os.ReadFile(filepath.Join(dir, "failed", c.ReceiptID+".json"))
	if err != nil || !strings.Contains(string(fb), `"failed":"no key"`) {
		t.Fatalf("failed/: %s %v", fb, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "outbox", ".tmp-*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	os.WriteFile(filepath.Join(dir, "outbox", a.ReceiptID+".json"), []byte("{"), 0o644)
	if _, err := s.Load(); err == nil || !strings.Contains(err.Error(), a.ReceiptID) {
		t.Fatalf("a corrupt record: %v", err)
	}
}

// FuzzDecodeRecord: any bytes decode to a record of the id they are stored
// under, or to an error; never a panic.
func FuzzDecodeRecord(f *testing.F) {
	r := testRecord(f, 1)
	b, _ := json.Marshal(r)
	f.Add(r.ReceiptID, b)
	r.EscrowTx, r.Attempts, r.Failed = []byte("tx"), 2, "x"
	b, _ = json.Marshal(r)
	f.Add(r.ReceiptID, b)
	f.Add(r.ReceiptID, []byte(`{"receiptId":"`+r.ReceiptID+`","attempts":-1}`))
	f.Add("x", []byte(`{"receiptId":"x"}`))
	f.Add("", []byte("{"))
	f.Add("", []byte(`null`))
	f.Fuzz(func(t *testing.T, id string, b []byte) {
		r, err := DecodeRecord(id, b)
		if err == nil && (r.ReceiptID != id || r.Attempts < 0) {
			t.Fatalf("decoded %+v under %q", r, id)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Fatalf("multi-line error %q", err)
		}
	})
}
