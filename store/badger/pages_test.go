package badger

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestParseMapsLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		line string
		want mapping
	}{
		{
			name: "table file is parsed with its path",
			line: "7f3c5a400000-7f3c5a7e8000 rw-s 00000000 fd:01 1234567                    /data/db/000012.sst",
			want: mapping{start: 0x7f3c5a400000, end: 0x7f3c5a7e8000, perms: "rw-s", inode: 1234567, path: "/data/db/000012.sst"},
		},
		{
			name: "path with spaces is kept whole",
			line: "1000-2000 r--s 00001000 103:02 42    /my data/d b/000001.sst",
			want: mapping{start: 0x1000, end: 0x2000, perms: "r--s", offset: 0x1000, inode: 42, path: "/my data/d b/000001.sst"},
		},
		{
			name: "deleted file is marked and its path unmarked",
			line: "1000-2000 r--s 00000000 fd:01 7 /data/db/000003.sst (deleted)",
			want: mapping{start: 0x1000, end: 0x2000, perms: "r--s", inode: 7, path: "/data/db/000003.sst", deleted: true},
		},
		{
			name: "anonymous mapping has no path",
			line: "c000000000-c004000000 rw-p 00000000 00:00 0",
			want: mapping{start: 0xc000000000, end: 0xc004000000, perms: "rw-p"},
		},
		{
			name: "anonymous mapping with trailing space has no path",
			line: "c000000000-c004000000 rw-p 00000000 00:00 0 ",
			want: mapping{start: 0xc000000000, end: 0xc004000000, perms: "rw-p"},
		},
		{
			name: "special mapping keeps its bracketed name",
			line: "7ffd1000-7ffd3000 r-xp 00000000 00:00 0                          [vdso]",
			want: mapping{start: 0x7ffd1000, end: 0x7ffd3000, perms: "r-xp", path: "[vdso]"},
		},
		{
			name: "upper-case device numbers are accepted",
			line: "1000-2000 r--p 00000000 FD:0A 9 /lib/x.so",
			want: mapping{start: 0x1000, end: 0x2000, perms: "r--p", inode: 9, path: "/lib/x.so"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseMapsLine(tt.line)
			if err != nil {
				t.Fatalf("parseMapsLine: %v", err)
			}
			if got != tt.want {
				t.Fatalf("parseMapsLine = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseMapsLineRejectsMalformed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		line string
	}{
		{"empty line", ""},
		{"only an address range", "1000-2000"},
		{"missing inode", "1000-2000 r--s 00000000 fd:01"},
		{"double space inside the fixed fields", "1000-2000  r--s 00000000 fd:01 7 /x.sst"},
		{"range without dash", "10002000 r--s 00000000 fd:01 7 /x.sst"},
		{"range not hex", "10z0-2000 r--s 00000000 fd:01 7 /x.sst"},
		{"empty start", "-2000 r--s 00000000 fd:01 7 /x.sst"},
		{"start equals end", "2000-2000 r--s 00000000 fd:01 7 /x.sst"},
		{"start after end", "3000-2000 r--s 00000000 fd:01 7 /x.sst"},
		{"address overflows 64 bits", "1000-1ffffffffffffffff r--s 00000000 fd:01 7 /x.sst"},
		{"negative address", "-1000-2000 r--s 00000000 fd:01 7 /x.sst"},
		{"short permissions", "1000-2000 r-s 00000000 fd:01 7 /x.sst"},
		{"offset not hex", "1000-2000 r--s 0000g000 fd:01 7 /x.sst"},
		{"device without colon", "1000-2000 r--s 00000000 fd01 7 /x.sst"},
		{"device not hex", "1000-2000 r--s 00000000 fx:01 7 /x.sst"},
		{"device minor empty", "1000-2000 r--s 00000000 fd: 7 /x.sst"},
		{"inode not decimal", "1000-2000 r--s 00000000 fd:01 7a /x.sst"},
		{"line longer than a path can be", "1000-2000 r--s 00000000 fd:01 7 /" + strings.Repeat("a", maxMapsLine)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := parseMapsLine(tt.line)
			if !errors.Is(err, errMapsLine) {
				t.Fatalf("parseMapsLine(%q) = %+v, %v; want errMapsLine", tt.line, m, err)
			}
		})
	}
}

func TestTableMappings(t *testing.T) {
	t.Parallel()
	const maps = `55d0c0000000-55d0c1000000 r-xp 00000000 fd:01 100 /usr/local/bin/hb
c000000000-c004000000 rw-p 00000000 00:00 0
7f0000000000-7f0000400000 rw-s 00000000 fd:01 201 /data/db/000001.sst
7f0000400000-7f0000800000 rw-s 00000000 fd:01 202 /data/db/000002.sst (deleted)
7f0000800000-7f0040800000 rw-s 00000000 fd:01 203 /data/db/000003.vlog
7f0040800000-7f0041800000 rw-s 00000000 fd:01 204 /data/db/00004.mem
7f0041800000-7f0041c00000 rw-s 00000000 fd:01 205 /data/dbx/000005.sst
7f0041c00000-7f0042000000 rw-s 00000000 fd:01 206 /data/db/sub/000006.sst
7f0042000000-7f0042001000 rw-s 00000000 fd:01 207 /data/db/DISCARD
7f0042001000-7f0042002000 rw-s 00000000 fd:01 208 /data/db/000007.sst
7ffd1000-7ffd3000 r-xp 00000000 00:00 0                          [vdso]
`
	tests := []struct {
		name    string
		maps    string
		dir     string
		want    []string
		wantErr bool
	}{
		{
			name: "only tables directly in the directory are returned, deleted ones included",
			maps: maps, dir: "/data/db",
			want: []string{"7f0000000000 /data/db/000001.sst", "7f0000400000 /data/db/000002.sst deleted", "7f0042001000 /data/db/000007.sst"},
		},
		{
			name: "another directory's tables are not returned",
			maps: maps, dir: "/data/dbx",
			want: []string{"7f0041800000 /data/dbx/000005.sst"},
		},
		{
			name: "no tables mapped gives nothing",
			maps: "c000000000-c004000000 rw-p 00000000 00:00 0\n", dir: "/data/db",
		},
		{
			name: "empty maps gives nothing",
			maps: "", dir: "/data/db",
		},
		{
			name: "malformed table line is an error",
			maps: maps + "zz-7f rw-s 00000000 fd:01 1 /data/db/000009.sst\n", dir: "/data/db",
			wantErr: true,
		},
		{
			name: "malformed line of another file is ignored",
			maps: maps + "garbage /lib/x.so\n", dir: "/data/db",
			want: []string{"7f0000000000 /data/db/000001.sst", "7f0000400000 /data/db/000002.sst deleted", "7f0042001000 /data/db/000007.sst"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tableMappings([]byte(tt.maps), tt.dir)
			if tt.wantErr {
				if !errors.Is(err, errMapsLine) {
					t.Fatalf("tableMappings = %v, %v; want errMapsLine", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("tableMappings: %v", err)
			}
			var short []string
			for _, m := range got {
				s := fmt.Sprintf("%x %s", m.start, m.path)
				if m.deleted {
					s += " deleted"
				}
				short = append(short, s)
			}
			if strings.Join(short, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("tableMappings = %q, want %q", short, tt.want)
			}
		})
	}
}

func TestMapsDirOfEscapesNewline(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	real, err := mapsDirOf(parent)
	if err != nil {
		t.Fatalf("mapsDirOf: %v", err)
	}
	dir := parent + "/a\nb"
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	got, err := mapsDirOf(dir)
	if err != nil {
		t.Fatalf("mapsDirOf: %v", err)
	}
	if want := real + `/a\012b`; got != want {
		t.Fatalf("mapsDirOf = %q, want %q", got, want)
	}
}

// FuzzParseMapsLine: any line parses or fails with errMapsLine, never
// panics, and a parsed line prints back to a line that parses the same.
func FuzzParseMapsLine(f *testing.F) {
	for _, s := range []string{
		"7f3c5a400000-7f3c5a7e8000 rw-s 00000000 fd:01 1234567                    /data/db/000012.sst",
		"1000-2000 r--s 00000000 fd:01 7 /data/db/000003.sst (deleted)",
		"c000000000-c004000000 rw-p 00000000 00:00 0",
		"7ffd1000-7ffd3000 r-xp 00000000 00:00 0                          [vdso]",
		"1000-2000 r--s 00001000 103:02 42    /my data/d b/000001.sst",
		"",
		"1000-",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m, err := parseMapsLine(line)
		if err != nil {
			if !errors.Is(err, errMapsLine) {
				t.Fatalf("parseMapsLine(%q): error %v is not errMapsLine", line, err)
			}
			return
		}
		if m.start >= m.end || len(m.perms) != 4 {
			t.Fatalf("parseMapsLine(%q) = %+v: bad range or permissions", line, m)
		}
		path := m.path
		if m.deleted {
			path += deletedMark
		}
		again := fmt.Sprintf("%x-%x %s %08x 00:00 %d %s", m.start, m.end, m.perms, m.offset, m.inode, path)
		m2, err := parseMapsLine(again)
		if err != nil || m2 != m {
			t.Fatalf("parseMapsLine(%q) = %+v; printed %q parses to %+v, %v", line, m, again, m2, err)
		}
	})
}
