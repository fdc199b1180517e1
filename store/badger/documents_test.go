package badger

import (
	"bytes"
	"testing"
	"time"

	"hardbound/store"
)

// On disk a document of store.MaxDocumentSize goes to the value log and
// survives a reopen; an in-memory store refuses what it cannot hold with
// an error instead of handing Badger a value it cannot write.
func TestDocumentSizes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte{'x'}, store.MaxDocumentSize)
	at := time.Now()
	if err := s.PutDocument(t.Context(), &store.Document{Name: "big", Body: body, Fetched: at}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.GetDocument(t.Context(), "big")
	if err != nil || !bytes.Equal(got.Body, body) || !got.Fetched.Equal(at.Truncate(time.Microsecond)) {
		t.Fatalf("after reopen: %v", err)
	}
	m, err := Open(t.Context(), "", WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.PutDocument(t.Context(), &store.Document{Name: "big", Body: body[:maxInMemoryDocument+1], Fetched: at}); err == nil {
		t.Fatal("an in-memory store took a document above its limit")
	}
	if err := m.PutDocument(t.Context(), &store.Document{Name: "big", Body: body[:maxInMemoryDocument], Fetched: at}); err != nil {
		t.Fatalf("an in-memory store refused a document at its limit: %v", err)
	}
}
