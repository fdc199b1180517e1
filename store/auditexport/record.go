// Package auditexport takes the audit chain off the host: it streams every
// event, in order and at least once, to syslog receivers (RFC 5424 over
// TLS per RFC 5425, over TCP with RFC 6587 octet counting, or over UDP per
// RFC 5426) and HTTPS collectors (JSON lines), each sink resuming from its
// own cursor in the store; it signs checkpoints of the chain's head with a
// dedicated audit key; and it verifies the chain against the newest
// checkpoint, or against checkpoints kept elsewhere. docs/audit.md
// describes the records and the setup.
package auditexport

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"hardbound/store"
)

// Record types, the "type" field of every exported object.
const (
	TypeEvent      = "audit_event"
	TypeCheckpoint = "audit_checkpoint"
)

// eventRecord is one exported event: the stored event's fields as they are
// hashed (store.AuditEvent.ComputeHash), plus type and host.
type eventRecord struct {
	Type string `json:"type"`
	Host string `json:"host,omitempty"`
	*store.AuditEvent
}

// checkpointRecord is one exported checkpoint.
type checkpointRecord struct {
	Type string `json:"type"`
	Host string `json:"host,omitempty"`
	*store.AuditCheckpoint
}

// item is one thing a sink delivers: an event or a checkpoint.
type item struct {
	ev *store.AuditEvent
	cp *store.AuditCheckpoint
}

func (it item) seq() uint64 {
	if it.ev != nil {
		return it.ev.Seq
	}
	return it.cp.Seq
}

// appendJSON appends the item's JSON object (one line, no newline).
func (it item) appendJSON(b []byte, host string) ([]byte, error) {
	var v any
	if it.ev != nil {
		v = eventRecord{Type: TypeEvent, Host: host, AuditEvent: it.ev}
	} else {
		v = checkpointRecord{Type: TypeCheckpoint, Host: host, AuditCheckpoint: it.cp}
	}
	j, err := json.Marshal(v)
	if err != nil {
		return b, fmt.Errorf("auditexport: encode seq %d: %w", it.seq(), err)
	}
	return append(b, j...), nil
}

// MaxLine bounds one line of a file read by ReadRecords.
const MaxLine = 1 << 20

// ErrLineTooLong is a line over MaxLine in ReadRecords' input.
var ErrLineTooLong = errors.New("auditexport: line too long")

// ReadRecords reads what a sink received: one record per line, either a
// bare JSON object (an http collector's JSON lines, `audit export
// --format jsonl`) or a line whose JSON object starts after a prefix (a
// syslog receiver's file: the object is the message). Lines without an
// object of a known type are skipped. fn gets each event or checkpoint
// (exactly one of them non-nil) in file order.
func ReadRecords(r io.Reader, fn func(ev *store.AuditEvent, cp *store.AuditCheckpoint) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLine)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		i := bytes.IndexByte(line, '{')
		if i < 0 {
			continue
		}
		var head struct {
			Type string `json:"type"`
		}
		obj := line[i:]
		if json.Unmarshal(obj, &head) != nil {
			continue
		}
		var err error
		switch head.Type {
		case TypeEvent:
			ev := new(store.AuditEvent)
			if e := json.Unmarshal(obj, ev); e != nil {
				return fmt.Errorf("auditexport: line %d: %w", n, e)
			}
			err = fn(ev, nil)
		case TypeCheckpoint:
			cp := new(store.AuditCheckpoint)
			if e := json.Unmarshal(obj, cp); e != nil {
				return fmt.Errorf("auditexport: line %d: %w", n, e)
			}
			err = fn(nil, cp)
		default:
			continue
		}
		if err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%w: line %d over %d bytes", ErrLineTooLong, n+1, MaxLine)
		}
		return fmt.Errorf("auditexport: read: %w", err)
	}
	return nil
}

// ReadCheckpoints returns the checkpoints of ReadRecords' input.
func ReadCheckpoints(r io.Reader) ([]store.AuditCheckpoint, error) {
	var out []store.AuditCheckpoint
	err := ReadRecords(r, func(_ *store.AuditEvent, cp *store.AuditCheckpoint) error {
		if cp != nil {
			out = append(out, *cp)
		}
		return nil
	})
	return out, err
}

// ErrNoCheckpoint: a sink's file holds no checkpoint, so nothing can be
// verified against it.
var ErrNoCheckpoint = errors.New("holds no audit checkpoint")

// ReadCheckpointFile returns the checkpoints in a sink's file (a syslog
// file or JSON lines, as ReadRecords reads them); a file without one is
// ErrNoCheckpoint, since a verification against it would prove nothing.
func ReadCheckpointFile(path string) ([]store.AuditCheckpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cps, err := ReadCheckpoints(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(cps) == 0 {
		return nil, fmt.Errorf("%s %w", path, ErrNoCheckpoint)
	}
	return cps, nil
}

// Thin returns at most n of the checkpoints cps (oldest first): the
// newest n/2 and an even spread of the older ones, so that a verification
// against them still covers the whole chain.
func Thin(cps []store.AuditCheckpoint, n int) []store.AuditCheckpoint {
	if len(cps) <= n {
		return cps
	}
	newest := cps[len(cps)-n/2:]
	older := cps[:len(cps)-n/2]
	out := make([]store.AuditCheckpoint, 0, n)
	step := float64(len(older)) / float64(n-len(newest))
	for i := 0; i < n-len(newest); i++ {
		out = append(out, older[int(float64(i)*step)])
	}
	return append(out, newest...)
}
