package badger

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io/fs"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bdb "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"hardbound/store"
)

func withCompression(c options.CompressionType) Option {
	return func(cfg *config) { cfg.compression = c }
}

// coldSet is what fillCold wrote: the keys to read back.
type coldSet struct {
	devices []string
	certs   []store.Hash
}

// fillCold writes devices [from, from+n) of a synthetic fleet straight
// into s, 500 per transaction: each device with two aliases and one real
// ECDSA P-256 leaf certificate for its own key (so the DER compresses as
// real ones do).
func fillCold(tb testing.TB, s *Store, from, n int) coldSet {
	tb.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hardbound bench issuing CA", Organization: []string{"Example Corp"}},
		NotBefore: time.Unix(1.7e9, 0), NotAfter: time.Unix(1.9e9, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}
	var set coldSet
	const perTxn = 500
	for lo := from; lo < from+n; lo += perTxn {
		err := s.update(context.Background(), "fill", func(txn *bdb.Txn) error {
			for i := lo; i < min(lo+perTxn, from+n); i++ {
				id := fmt.Sprintf("dev-%08d", i)
				tmpl := &x509.Certificate{
					SerialNumber: big.NewInt(int64(i) + 1000), Subject: pkix.Name{CommonName: id, Organization: []string{"Example Corp"}},
					NotBefore: time.Unix(1.8e9, 0), NotAfter: time.Unix(1.8e9+90*86400, 0),
					KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
					DNSNames: []string{id + ".devices.example.com"},
				}
				leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				if err != nil {
					return err
				}
				der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &leafKey.PublicKey, caKey)
				if err != nil {
					return err
				}
				d := store.Device{
					ID: id, Platform: "windows", Profile: "corp", Status: store.DeviceActive, Groups: []string{"eng", "laptops"},
					Aliases: map[string]string{"serial": "SN" + strconv.Itoa(i*7919), "intune": fmt.Sprintf("%x", sha256.Sum256([]byte(id)))[:36]},
					Posture: store.Posture{State: store.ComplianceCompliant, Source: "intune", UpdatedAt: time.Unix(1.8e9, 0).UTC()},
				}
				s.stampDevice(&d, nil)
				if err := putDeviceTxn(txn, &d, nil); err != nil {
					return err
				}
				c := store.Cert{
					V: store.RecordVersion, SHA256: sha256.Sum256(der), Serial: fmt.Sprintf("%x", i+1000), DeviceID: id,
					KeySHA256: sha256.Sum256([]byte("key" + id)), NotBefore: tmpl.NotBefore.UTC(), NotAfter: tmpl.NotAfter.UTC(),
					Profile: "corp", Protocol: "scep", DER: der,
				}
				if err := putCertTxn(txn, &c, true); err != nil {
					return err
				}
				if err := setRef(txn, keyCertSerial(c.Serial), c.SHA256.String()); err != nil {
					return err
				}
				if err := txn.Set(keyDeviceCert(id, c.SHA256), nil); err != nil {
					return err
				}
				set.devices = append(set.devices, id)
				set.certs = append(set.certs, c.SHA256)
			}
			return nil
		})
		if err != nil {
			tb.Fatalf("fill: %v", err)
		}
	}
	return set
}

// tableBytes sums the sizes of the LSM table files in dir.
func tableBytes(tb testing.TB, dir string) int64 {
	tb.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, ".sst") {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func TestReopenWithOtherCompressionReadsExistingTables(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := t.Context()
	steps := []struct {
		name string
		c    options.CompressionType
	}{
		{"snappy", options.Snappy},
		{"none", options.None},
		{"snappy_again", options.Snappy},
	}
	var all coldSet
	for i, step := range steps {
		s, err := Open(ctx, dir, withCompression(step.c))
		if err != nil {
			t.Fatalf("%s: Open: %v", step.name, err)
		}
		if i == 1 {
			// The tables written in step 0 must really be compressed, or
			// this test would not test reading them under options.None.
			compressed := false
			for _, ti := range s.db.Tables() {
				compressed = compressed || ti.OnDiskSize < ti.UncompressedSize
			}
			if !compressed {
				t.Fatalf("no snappy-compressed table after step 0: %+v", s.db.Tables())
			}
		}
		for j, id := range all.devices {
			if _, err := s.GetDevice(ctx, id); err != nil {
				t.Fatalf("%s: GetDevice(%s): %v", step.name, id, err)
			}
			c, err := s.GetCert(ctx, all.certs[j])
			if err != nil || c.DeviceID != id || len(c.DER) == 0 {
				t.Fatalf("%s: GetCert(%s) = %+v, %v", step.name, all.certs[j], c, err)
			}
		}
		added := fillCold(t, s, i*2000, 2000)
		all.devices = append(all.devices, added.devices...)
		all.certs = append(all.certs, added.certs...)
		if err := s.AppendAudit(ctx, auditEvent(step.name)); err != nil {
			t.Fatal(err)
		}
		verifyChain(t, s, uint64(i+1))
		// Close flushes the memtable into a table written with step.c.
		if err := s.Close(); err != nil {
			t.Fatalf("%s: Close: %v", step.name, err)
		}
	}
}

// BenchmarkColdReads measures GetCert/GetDevice by random key over a
// fleet much larger than the block cache, read back after a reopen, with
// snappy-compressed and uncompressed tables. HARDBOUND_BENCH_COLD_DEVICES
// sets the fleet size (default 100,000). sst-MB is the table files' size.
func BenchmarkColdReads(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("HARDBOUND_BENCH_COLD_DEVICES")); err == nil && v > 0 {
		n = v
	}
	for _, comp := range []struct {
		name string
		c    options.CompressionType
	}{{"snappy", options.Snappy}, {"none", options.None}} {
		b.Run(comp.name, func(b *testing.B) {
			dir := b.TempDir()
			ctx := context.Background()
			s, err := Open(ctx, dir, withCompression(comp.c))
			if err != nil {
				b.Fatal(err)
			}
			set := fillCold(b, s, 0, n)
			// Settle the LSM tree so background compaction does not compete
			// with the reads being timed.
			if err := s.db.Flatten(2); err != nil {
				b.Fatal(err)
			}
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			s, err = Open(ctx, dir, withCompression(comp.c))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			sstMB := float64(tableBytes(b, dir)) / (1 << 20)
			reads := []struct {
				name string
				get  func(i int) error
			}{
				{"GetCert", func(i int) error { _, err := s.GetCert(ctx, set.certs[i]); return err }},
				{"GetDevice", func(i int) error { _, err := s.GetDevice(ctx, set.devices[i]); return err }},
			}
			for _, r := range reads {
				b.Run(r.name, func(b *testing.B) {
					rng := mrand.New(mrand.NewPCG(1, 2))
					b.ReportAllocs()
					for b.Loop() {
						if err := r.get(rng.IntN(n)); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(sstMB, "sst-MB")
				})
			}
		})
	}
}
