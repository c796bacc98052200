package secret

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// lineLoader reads "name" lines into certificate secrets whose leaf's
// CommonName is the line's second word; "bad" fails the load.
func lineLoader(data []byte) (map[string]*Secret, error) {
	out := map[string]*Secret{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		name, tag, _ := strings.Cut(line, " ")
		if name == "bad" {
			return nil, errors.New("bad secret")
		}
		out[name] = &Secret{Certificate: &tls.Certificate{OCSPStaple: []byte(tag)}}
	}
	return out, nil
}

func tag(s *Secret) string {
	if s == nil || s.Certificate == nil {
		return "<none>"
	}
	return string(s.Certificate.OCSPStaple)
}

func TestStoreSetGet(t *testing.T) {
	s := NewStore(Options{})
	k := Key{SourceStatic, "a"}
	if s.Get(k) != nil {
		t.Fatal("Get of an unknown key")
	}
	sl := s.Slot(k)
	if s.Slot(k) != sl || sl.Key() != k {
		t.Fatal("Slot is not stable")
	}
	if len(s.Keys()) != 0 {
		t.Fatal("an empty slot is listed")
	}
	s.Set(k, &Secret{Certificate: &tls.Certificate{OCSPStaple: []byte("v1")}})
	s.Set(Key{SourceADS, "a"}, &Secret{Certificate: &tls.Certificate{OCSPStaple: []byte("ads")}})
	if tag(sl.Load()) != "v1" || tag(s.Get(Key{SourceADS, "a"})) != "ads" {
		t.Fatal("sources must not share names")
	}
	if got := s.Keys(); len(got) != 2 || got[0].String() != "ads:a" || got[1].String() != "static:a" {
		t.Fatalf("Keys = %v", got)
	}
	s.Set(k, nil)
	if sl.Load() != nil {
		t.Fatal("Set(nil) did not clear")
	}
}

func TestWatchFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sds.yaml")
	write := func(content string) {
		t.Helper()
		// Replace the file the way Kubernetes and most tools do: a new
		// file renamed over the old one.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	s := NewStore(Options{PollInterval: 10 * time.Millisecond, Logger: hclog.NewNullLogger()})
	if err := s.WatchFile(path, lineLoader); err == nil {
		t.Fatal("a missing file was watched")
	}
	write("bad")
	if err := s.WatchFile(path, lineLoader); err == nil || !strings.Contains(err.Error(), "bad secret") {
		t.Fatalf("WatchFile of a bad file: %v", err)
	}
	// A slot made before the watch starts is linked to it too.
	early := s.Slot(Key{SourceFile(path), "cert"})
	write("cert v1\nroots r1")
	if err := s.WatchFile(path, lineLoader); err != nil {
		t.Fatal(err)
	}
	if err := s.WatchFile(path, func([]byte) (map[string]*Secret, error) { return nil, errors.New("not used") }); err != nil {
		t.Fatalf("watching a path again: %v", err)
	}
	cert := s.Slot(Key{SourceFile(path), "cert"})
	if cert != early || tag(cert.Load()) != "v1" || tag(s.Get(Key{SourceFile(path), "roots"})) != "r1" {
		t.Fatalf("first load: %s", tag(cert.Load()))
	}
	waitLoad := func(what, want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for tag(cert.Load()) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: cert is %s, want %s", what, tag(cert.Load()), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	write("cert v2\nroots r1")
	waitLoad("rotation", "v2")
	if s.FileError(path) != nil {
		t.Fatalf("FileError after a good reload: %v", s.FileError(path))
	}

	// A bad file keeps the secrets in force and reports why.
	write("bad")
	waitFileError(t, s, path, "bad secret")
	if tag(cert.Load()) != "v2" {
		t.Fatal("a bad file replaced the secret in force")
	}
	// So does a file that drops a secret in use.
	write("cert v3")
	waitFileError(t, s, path, "no longer in the file: roots")
	if tag(cert.Load()) != "v2" {
		t.Fatal("a file without a secret in use replaced the others")
	}
	os.Remove(path)
	waitFileError(t, s, path, "no such file")
	write("cert v4\nroots r2\nextra x")
	waitLoad("recovery", "v4")
	if tag(s.Get(Key{SourceFile(path), "extra"})) != "x" {
		t.Fatal("a secret added to the file is not served")
	}
	if s.FileError("/not/watched") != nil {
		t.Fatal("FileError of a path not watched")
	}
}

func waitFileError(t *testing.T, s *Store, path, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.Slot(Key{SourceFile(path), "cert"}).Load() // reads poll the file
		if err := s.FileError(path); err != nil && strings.Contains(err.Error(), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("FileError = %v, want %q", s.FileError(path), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestShare(t *testing.T) {
	s := NewStore(Options{})
	a, b := &tls.Config{ServerName: "a"}, &tls.Config{ServerName: "b"}
	if s.Share("k", a) != a {
		t.Fatal("the first config shared is not returned")
	}
	if s.Share("k", b) != a {
		t.Fatal("a config shared under the same key is not reused")
	}
	if s.Share("other", b) != b {
		t.Fatal("keys are mixed up")
	}
	// Once nothing uses a shared config, its entry goes.
	func() {
		s.Share("gone", &tls.Config{ServerName: "gone"})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for s.sharedCount() > 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d shared configs tracked, want 2", s.sharedCount())
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
}
