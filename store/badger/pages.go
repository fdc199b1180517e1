package badger

// Releasing the resident pages of Badger's table files.
//
// Badger v4 memory-maps every table (.sst) and has no file-I/O mode. A
// table written by a flush or a compaction is written through its mapping
// (table.CreateTable copies the whole table into it), so every page of it is
// resident in this process when the table opens; a scan (posture's Warm)
// touches the rest. Those pages are clean page cache, but they count in the
// process's RSS: with 1M devices, after a restart on a store that compacted
// at open, 1.04 GiB of them against a 539 MiB Go heap (BENCHMARKS.md,
// finding 12). Badger exposes neither its table mappings nor an option to
// map them differently, so the store finds them in /proc/self/maps (by the
// data directory and the .sst suffix) and advises the kernel that it can
// take them back (pages_linux.go).
//
// Only advice that never changes the contents of memory is used
// (MADV_PAGEOUT): a table may be unmapped by Badger between the read of
// /proc/self/maps and the advice, and its address range reused by another
// mapping. Paging out a range that became anonymous memory or another
// table is harmless (at worst a page fault later); dropping it
// (MADV_DONTNEED) would zero live memory.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// defaultPageReleaseInterval is how often the store looks for table files
// mapped since the last look (a flush or a compaction is running or just
// ran) and then releases every table. A look is one read of
// /proc/self/maps; a compaction that rewrites a level in ~10-20 s is caught
// while it runs, not only after.
const defaultPageReleaseInterval = 10 * time.Second

// tableSuffix names Badger's table files. Value-log files (.vlog) hold only
// values above the value threshold, which hardbound's records never reach
// (they stay a few bytes); the write-ahead memtables (.mem) are small and
// hot.
const tableSuffix = ".sst"

// errMapsLine reports a /proc/self/maps line that does not parse.
var errMapsLine = errors.New("store/badger: malformed maps line")

// WithPageReleaseInterval sets how often the store checks whether Badger
// wrote table files since the last check, and if so releases the resident
// pages of every table (default 10s; 0 turns it off). See
// ReleaseTablePages. Linux only; elsewhere it has no effect.
func WithPageReleaseInterval(d time.Duration) Option {
	return func(c *config) { c.pageInterval = d }
}

// PageRelease reports what one release advised.
type PageRelease struct {
	// Tables is the number of table mappings advised.
	Tables int
	// Bytes is their total length (mapped, not necessarily resident).
	Bytes int64
	// Gone counts mappings unmapped before the advice reached them
	// (a compaction deleted the table meanwhile).
	Gone int
}

// ReleaseTablePages asks the kernel to take back the resident pages of
// every table file of the store mapped in this process. Call it after a
// scan that read the whole store (a cache warm-up): the pages stay on disk
// and in Badger's mapping, and a later read faults them back in. Reads and
// writes running concurrently stay correct. In memory, and on systems other
// than Linux, it does nothing.
func (s *Store) ReleaseTablePages(ctx context.Context) (PageRelease, error) {
	return s.releaseTables(ctx, false)
}

// releaseTables advises every table mapping, always (ifChanged false) or
// only when a table appeared since the last call (ifChanged true), and
// once more at the call after that: a table appears in the maps before
// Badger has finished with it, and a flush or compaction goes on reading
// its tables for a moment, so pages advised at the first sight of a new
// table can be resident again right after (TestPageLoopReleasesAllTablesWhenATableIsWritten
// failed 1 run in 5 for it).
//
// Why all tables and not only the new ones: a compaction reads its input
// tables through their mappings (making them resident again, until it
// deletes them) while it writes its outputs, so while tables keep
// appearing, both kinds grow the RSS. When no table appeared, nothing is
// advised: pages that reads brought back in since (a Decide miss, the
// audit head) stay, and a quiet store costs one read of /proc/self/maps
// per tick.
func (s *Store) releaseTables(ctx context.Context, ifChanged bool) (PageRelease, error) {
	var rel PageRelease
	if s.mapsDir == "" || !pageReleaseSupported {
		return rel, nil
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return rel, fmt.Errorf("store/badger: release table pages: %w", ErrClosed)
	}
	s.pageMu.Lock()
	defer s.pageMu.Unlock()
	maps, err := readSelfMaps()
	if err != nil {
		return rel, fmt.Errorf("store/badger: release table pages: %w", err)
	}
	tables, err := tableMappings(maps, s.mapsDir)
	if err != nil {
		return rel, fmt.Errorf("store/badger: release table pages: %w", err)
	}
	seen := make(map[string]struct{}, len(tables))
	changed := false
	for _, m := range tables {
		seen[m.path] = struct{}{}
		if _, ok := s.released[m.path]; !ok {
			changed = true
		}
	}
	if ifChanged && !changed && !s.settle {
		return rel, nil
	}
	s.settle = ifChanged && changed
	for _, m := range tables {
		if err := ctx.Err(); err != nil {
			return rel, fmt.Errorf("store/badger: release table pages: %w", err)
		}
		switch err := pageOut(m.start, m.end-m.start); {
		case err == nil:
			rel.Tables++
			rel.Bytes += int64(m.end - m.start)
		case errors.Is(err, errRangeGone):
			rel.Gone++
		default:
			return rel, fmt.Errorf("store/badger: release table pages: %w", err)
		}
	}
	// Forget deleted tables: the set stays the size of the live table set.
	s.released = seen
	return rel, nil
}

// pageLoop releases every table's pages on a tick that finds new tables
// (see releaseTables): a table is fully resident when Badger opens it
// after writing it.
func (s *Store) pageLoop(every time.Duration) {
	defer s.gcDone.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.stop
		cancel()
	}()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		rel, err := s.releaseTables(ctx, true)
		switch {
		case err != nil && !errors.Is(err, ErrClosed) && ctx.Err() == nil:
			s.log.Warn("release table pages", "err", err)
		case rel.Tables > 0:
			s.log.Debug("new tables: released table pages", "tables", rel.Tables, "mapped_bytes", rel.Bytes)
		}
	}
}

// seedReleased records the tables mapped at open as seen, without advising
// them: opening a table reads only its index, so they are not resident;
// tables a compaction writes afterwards have new names.
func (s *Store) seedReleased() {
	if s.mapsDir == "" || !pageReleaseSupported {
		return
	}
	maps, err := readSelfMaps()
	if err != nil {
		s.log.Warn("read own memory mappings", "err", err)
		return
	}
	tables, err := tableMappings(maps, s.mapsDir)
	if err != nil {
		s.log.Warn("read own memory mappings", "err", err)
		return
	}
	s.pageMu.Lock()
	defer s.pageMu.Unlock()
	for _, m := range tables {
		s.released[m.path] = struct{}{}
	}
}

// mapsDirOf is dir as the kernel prints it in /proc/self/maps: absolute,
// symlinks resolved, a newline escaped as \012 (the only byte the kernel
// escapes in a path there).
func mapsDirOf(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", err
	}
	return strings.ReplaceAll(real, "\n", `\012`), nil
}

// mapping is one line of /proc/self/maps.
type mapping struct {
	start, end uintptr
	perms      string
	offset     uint64
	inode      uint64
	// path is the file's path as printed, without the " (deleted)" mark;
	// empty for anonymous memory, "[heap]"-style names for special ones.
	path    string
	deleted bool
}

const deletedMark = " (deleted)"

// maxMapsLine bounds one line (a path is at most PATH_MAX, 4096 bytes,
// plus ~80 bytes of fixed fields).
const maxMapsLine = 8 << 10

// parseMapsLine parses one line of /proc/PID/maps:
//
//	7f3c5a400000-7f3c5a7e8000 r--s 00000000 fd:01 1234567    /data/db/000012.sst
//
// The path starts after the padding that follows the inode and runs to
// the end of the line (it may contain spaces); it is absent for anonymous
// memory.
func parseMapsLine(line string) (mapping, error) {
	var m mapping
	if len(line) > maxMapsLine {
		return m, fmt.Errorf("%w: %d bytes", errMapsLine, len(line))
	}
	var f [5]string
	rest := line
	for i := range f {
		var ok bool
		f[i], rest, ok = strings.Cut(rest, " ")
		if f[i] == "" || (!ok && i < len(f)-1) {
			return m, fmt.Errorf("%w: %d fields", errMapsLine, i)
		}
	}
	lo, hi, ok := strings.Cut(f[0], "-")
	if !ok {
		return m, fmt.Errorf("%w: address range %q", errMapsLine, f[0])
	}
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	if err := errors.Join(err1, err2); err != nil || start >= end || uint64(uintptr(end)) != end {
		return m, fmt.Errorf("%w: address range %q", errMapsLine, f[0])
	}
	if len(f[1]) != 4 {
		return m, fmt.Errorf("%w: permissions %q", errMapsLine, f[1])
	}
	off, err := strconv.ParseUint(f[2], 16, 64)
	if err != nil {
		return m, fmt.Errorf("%w: offset %q", errMapsLine, f[2])
	}
	if maj, min, ok := strings.Cut(f[3], ":"); !ok || !isHex(maj) || !isHex(min) {
		return m, fmt.Errorf("%w: device %q", errMapsLine, f[3])
	}
	inode, err := strconv.ParseUint(f[4], 10, 64)
	if err != nil {
		return m, fmt.Errorf("%w: inode %q", errMapsLine, f[4])
	}
	path := strings.TrimLeft(rest, " ")
	deleted := false
	if p, ok := strings.CutSuffix(path, deletedMark); ok && strings.HasPrefix(p, "/") {
		path, deleted = p, true
	}
	return mapping{
		start: uintptr(start), end: uintptr(end), perms: f[1], offset: off,
		inode: inode, path: path, deleted: deleted,
	}, nil
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// tableMappings returns the mappings in maps (the text of /proc/self/maps)
// of table files directly in dir (as mapsDirOf prints it), deleted ones
// included: a table a compaction deleted stays mapped until its last
// reader is done, and its pages are as resident as a live table's.
// Badger maps a table in one piece; a table split over several lines (an
// mprotect, say) gives several mappings.
func tableMappings(maps []byte, dir string) ([]mapping, error) {
	var out []mapping
	sc := bufio.NewScanner(bytes.NewReader(maps))
	sc.Buffer(make([]byte, 0, 4096), maxMapsLine+1)
	for sc.Scan() {
		line := sc.Text()
		// Cheap filter first: most lines are the binary, libraries,
		// anonymous memory.
		if !strings.HasSuffix(line, tableSuffix) && !strings.HasSuffix(line, tableSuffix+deletedMark) {
			continue
		}
		m, err := parseMapsLine(line)
		if err != nil {
			return nil, err
		}
		if filepath.Dir(m.path) != dir || !strings.HasSuffix(m.path, tableSuffix) {
			continue
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("store/badger: read maps: %w", err)
	}
	return out, nil
}
