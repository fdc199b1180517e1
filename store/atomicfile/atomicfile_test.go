package atomicfile_test

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"hardbound/store/atomicfile"
)

func TestWrite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		existing []byte      // written first with 0644 when non-nil
		mode     fs.FileMode // of the new file
		data     []byte
	}{
		{name: "new/key-0600", mode: 0o600, data: []byte("-----BEGIN PRIVATE KEY-----\n")},
		{name: "new/cert-0644", mode: 0o644, data: []byte("-----BEGIN CERTIFICATE-----\n")},
		{name: "new/group-0640", mode: 0o640, data: []byte("x")},
		{name: "new/empty", mode: 0o600, data: nil},
		{name: "replace/narrows-mode", existing: []byte("old secret"), mode: 0o600, data: []byte("new secret")},
		{name: "replace/shorter", existing: bytes.Repeat([]byte("a"), 4096), mode: 0o644, data: []byte("b")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "file.pem")
			if tc.existing != nil {
				if err := os.WriteFile(path, tc.existing, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := atomicfile.Write(path, tc.data, tc.mode); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.data) {
				t.Errorf("content = %q, want %q", got, tc.data)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tc.mode {
				t.Errorf("mode = %v, want %v", fi.Mode().Perm(), tc.mode)
			}
			assertOnly(t, dir, "file.pem")
		})
	}
}

// A failed write leaves the target as it was and no temporary file.
func TestWriteFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) (path string, keep []string)
	}{
		{"missing-dir", func(t *testing.T, dir string) (string, []string) {
			return filepath.Join(dir, "absent", "file"), nil
		}},
		{"target-is-a-directory", func(t *testing.T, dir string) (string, []string) {
			p := filepath.Join(dir, "sub")
			if err := os.MkdirAll(filepath.Join(p, "child"), 0o700); err != nil {
				t.Fatal(err)
			}
			return p, []string{"sub"}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path, keep := tc.setup(t, dir)
			if err := atomicfile.Write(path, []byte("data"), 0o600); err == nil {
				t.Fatal("Write succeeded, want an error")
			}
			assertOnly(t, dir, keep...)
		})
	}
}

func TestSyncDir(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		dir     func(t *testing.T) string
		wantErr bool
	}{
		{"ok", func(t *testing.T) string { return t.TempDir() }, false},
		{"missing", func(t *testing.T) string { return filepath.Join(t.TempDir(), "absent") }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := atomicfile.SyncDir(tc.dir(t)); (err != nil) != tc.wantErr {
				t.Errorf("SyncDir: %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

// assertOnly fails unless dir holds exactly the entries names.
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if len(got) != len(names) {
		t.Fatalf("%s holds %q, want %q", dir, got, names)
	}
	for i := range names {
		if got[i] != names[i] {
			t.Fatalf("%s holds %q, want %q", dir, got, names)
		}
	}
}
