package outbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Store keeps the outbox on disk: Dir/outbox/RECEIPT_ID.json for every
// record (Record's JSON) and Dir/failed/RECEIPT_ID.json for the receipts
// given up. Every file is written to a temporary name, synced and
// renamed, so a record once saved survives a crash whole.
type Store struct {
	outbox, failed string
}

// OpenStore returns the store under dir, creating its folders.
func OpenStore(dir string) (*Store, error) {
	s := &Store{outbox: filepath.Join(dir, "outbox"), failed: filepath.Join(dir, "failed")}
	for _, d := range []string{s.outbox, s.failed} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("outbox store: %w", err)
		}
	}
	return s, nil
}

// ValidID reports whether id is a receipt id (64 lower-case hex digits),
// the only names the store writes.
func ValidID(id string) bool {
	return len(id) == 64 && strings.Trim(id, "0123456789abcdef") == ""
}

// Load reads every record of the outbox, in file-name order. A file that
// does not decode, or names another receipt, is an error naming it.
func (s *Store) Load() ([]Record, error) {
	ents, err := os.ReadDir(s.outbox)
	if err != nil {
		return nil, fmt.Errorf("outbox store: %w", err)
	}
	var out []Record
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !ValidID(id) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.outbox, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("outbox store: %w", err)
		}
		r, err := DecodeRecord(id, b)
		if err != nil {
			return nil, fmt.Errorf("outbox store: entry %s: %w", e.Name(), err)
		}
		out = append(out, r)
	}
	return out, nil
}

// DecodeRecord decodes the record stored under receipt id.
func DecodeRecord(id string, b []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("corrupt record: %w", err)
	}
	if r.ReceiptID != id {
		return Record{}, fmt.Errorf("corrupt record: it holds receipt %q", r.ReceiptID)
	}
	if r.Attempts < 0 {
		return Record{}, fmt.Errorf("corrupt record: %d attempts", r.Attempts)
	}
	return r, nil
}

// Save writes a record durably.
func (s *Store) Save(r Record) error {
	if !ValidID(r.ReceiptID) {
		return fmt.Errorf("outbox store: bad receipt id %q", r.ReceiptID)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("outbox store: %w", err)
	}
	return writeFileSync(filepath.Join(s.outbox, r.ReceiptID+".json"), b)
}

// SaveAll writes records durably, side by side: each file is written and
// synced under a temporary name, then all are renamed and the folder is
// synced once. On an error some records may be written, each whole.
func (s *Store) SaveAll(rs []Record) error {
	tmps := make([]string, len(rs))
	errs := make([]error, len(rs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, r := range rs {
		if !ValidID(r.ReceiptID) {
			return fmt.Errorf("outbox store: bad receipt id %q", r.ReceiptID)
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			b, err := json.Marshal(r)
			if err == nil {
				tmps[i], err = writeTemp(s.outbox, b)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	var err error
	for i, r := range rs {
		if errs[i] == nil && err == nil {
			errs[i] = os.Rename(tmps[i], filepath.Join(s.outbox, r.ReceiptID+".json"))
		}
		if errs[i] != nil || err != nil {
			if tmps[i] != "" {
				os.Remove(tmps[i])
			}
			if err == nil {
				err = fmt.Errorf("outbox store: %w", errs[i])
			}
		}
	}
	syncDir(s.outbox)
	return err
}

// Remove deletes receipt id's record (the ledger holds the receipt).
func (s *Store) Remove(id string) error {
	if !ValidID(id) {
		return fmt.Errorf("outbox store: bad receipt id %q", id)
	}
	if err := os.Remove(filepath.Join(s.outbox, id+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("outbox store: %w", err)
	}
	return nil
}

// Fail moves a given-up record to failed/ (written there first, then
// removed from the outbox).
func (s *Store) Fail(r Record) error {
	if !ValidID(r.ReceiptID) {
		return fmt.Errorf("outbox store: bad receipt id %q", r.ReceiptID)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("outbox store: %w", err)
	}
	if err := writeFileSync(filepath.Join(s.failed, r.ReceiptID+".json"), b); err != nil {
		return err
	}
	return s.Remove(r.ReceiptID)
}

// writeFileSync writes path atomically and durably.
func writeFileSync(path string, data []byte) error {
	tmp, err := writeTemp(filepath.Dir(path), data)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		if tmp != "" {
			os.Remove(tmp)
		}
		return fmt.Errorf("outbox store: writing %s: %w", path, err)
	}
	syncDir(filepath.Dir(path))
	return nil
}

// writeTemp writes data to a new synced temporary file in dir.
func writeTemp(dir string, data []byte) (string, error) {
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
