package inventory

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Bounds of one import.
const (
	// MaxImportBytes caps an import file (a million short rows fit).
	MaxImportBytes = 64 << 20
	// MaxImportRecords caps the records of one import.
	MaxImportRecords = 1_000_000
)

// ErrParse is wrapped by Parse's errors about the file's shape.
var ErrParse = errors.New("inventory: cannot parse import")

// Format of an import file.
type Format string

const (
	FormatCSV  Format = "csv"
	FormatJSON Format = "json"
)

// DetectFormat picks the format from a file name, then from the first
// non-blank byte ('[' or '{' is JSON).
func DetectFormat(name string, b []byte) Format {
	switch {
	case strings.HasSuffix(strings.ToLower(name), ".json"):
		return FormatJSON
	case strings.HasSuffix(strings.ToLower(name), ".csv"):
		return FormatCSV
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && (t[0] == '[' || t[0] == '{') {
		return FormatJSON
	}
	return FormatCSV
}

// Row is one parsed record and where it was (1-based line of CSV, index
// of JSON).
type Row struct {
	Line   int
	Record Record
}

// csvColumns are the columns a CSV import may have; the header names
// them, in any order. alias:KIND columns add aliases of that kind.
var csvColumns = map[string]bool{"id": true, "platform": true, "serial": true, "udid": true, "intune_id": true, "ek_sha256": true, "profile": true, "owner": true}

// Parse reads an import: CSV with a header row (columns id, platform,
// serial, udid, intune_id, ek_sha256, profile, owner and alias:KIND), or
// JSON (an array of records, or {"devices": [...]}). It checks the shape
// only; Normalize checks each record. Input past MaxImportBytes or
// MaxImportRecords is refused, never read whole.
func Parse(r io.Reader, f Format) ([]Row, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxImportBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read: %w", ErrParse, err)
	}
	if len(b) > MaxImportBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrParse, MaxImportBytes)
	}
	switch f {
	case FormatCSV:
		return parseCSV(b)
	case FormatJSON:
		return parseJSON(b)
	}
	return nil, fmt.Errorf("%w: unknown format %q (csv or json)", ErrParse, f)
}

// ParseFile is ParseNamed of the file at path; "-" is stdin.
func ParseFile(path string, stdin io.Reader, f Format) ([]Row, error) {
	r := stdin
	if path != "-" {
		file, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer file.Close()
		r = file
	}
	return ParseNamed(r, path, f)
}

// ParseAliases reads KIND=VALUE pairs (the CLI's repeated --alias) into a
// map of aliases, nil for none; a later pair of a kind wins.
func ParseAliases(pairs []string) (map[string]string, error) {
	var out map[string]string
	for _, a := range pairs {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("%q: want KIND=VALUE", a)
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	return out, nil
}

// ParseNamed is Parse of a file called name; f "" is DetectFormat's
// choice from the name and the content.
func ParseNamed(r io.Reader, name string, f Format) ([]Row, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxImportBytes+1))
	if err != nil {
		return nil, err
	}
	if f == "" {
		f = DetectFormat(name, b)
	}
	return Parse(bytes.NewReader(b), f)
}

func parseCSV(b []byte) ([]Row, error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // spreadsheets write a BOM
	cr := csv.NewReader(bytes.NewReader(b))
	cr.FieldsPerRecord = 0 // every row as wide as the header
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	head, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: empty file: a header row is required", ErrParse)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrParse, err)
	}
	cols := make([]string, len(head))
	seen := map[string]bool{}
	for i, h := range head {
		h = strings.ToLower(strings.TrimSpace(h))
		kind, isAlias := strings.CutPrefix(h, "alias:")
		switch {
		case isAlias && kind != "" && len(kind) <= maxField:
		case csvColumns[h]:
		default:
			return nil, fmt.Errorf("%w: header column %d %q is not one of id, platform, serial, udid, intune_id, ek_sha256, profile, owner, alias:KIND", ErrParse, i+1, truncate(h, 40))
		}
		if seen[h] {
			return nil, fmt.Errorf("%w: header column %q appears twice", ErrParse, h)
		}
		seen[h] = true
		cols[i] = h
	}
	if !seen["platform"] {
		return nil, fmt.Errorf("%w: header has no platform column", ErrParse)
	}
	var out []Row
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrParse, err)
		}
		line, _ := cr.FieldPos(0) // only valid after a successful Read
		if len(out) >= MaxImportRecords {
			return nil, fmt.Errorf("%w: more than %d records", ErrParse, MaxImportRecords)
		}
		var r Record
		blank := true
		for i, v := range rec {
			v = strings.TrimSpace(v)
			if v != "" {
				blank = false
			}
			switch c := cols[i]; c {
			case "id":
				r.ID = v
			case "platform":
				r.Platform = v
			case "serial":
				r.Serial = v
			case "udid":
				r.UDID = v
			case "intune_id":
				r.IntuneID = v
			case "ek_sha256":
				r.EKSHA256 = v
			case "profile":
				r.Profile = v
			case "owner":
				r.Owner = v
			default:
				if v != "" {
					if r.Aliases == nil {
						r.Aliases = map[string]string{}
					}
					r.Aliases[strings.TrimPrefix(c, "alias:")] = v
				}
			}
		}
		if blank {
			continue
		}
		out = append(out, Row{Line: line, Record: r})
	}
}

func parseJSON(b []byte) ([]Row, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var recs []Record
	t := bytes.TrimSpace(b)
	if len(t) > 0 && t[0] == '{' {
		var doc struct {
			Devices []Record `json:"devices"`
		}
		if err := dec.Decode(&doc); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrParse, err)
		}
		if doc.Devices == nil {
			return nil, fmt.Errorf("%w: object without a devices array", ErrParse)
		}
		recs = doc.Devices
	} else if err := dec.Decode(&recs); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrParse, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the JSON document", ErrParse)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: trailing data after the JSON document", ErrParse)
	}
	if len(recs) > MaxImportRecords {
		return nil, fmt.Errorf("%w: more than %d records", ErrParse, MaxImportRecords)
	}
	out := make([]Row, len(recs))
	for i, r := range recs {
		out[i] = Row{Line: i + 1, Record: r}
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
