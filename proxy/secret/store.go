package secret

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/hashicorp/go-hclog"
)

// Where a secret comes from: one namespace per source, as in Envoy, where
// a static secret and an SDS secret of the same name are two secrets.
const (
	// SourceStatic is static_resources.secrets (no sds_config).
	SourceStatic = "static"
	// SourceADS is SDS over the ADS stream (sds_config.ads).
	SourceADS = "ads"
)

// SourceFile is the source of the secrets of a file
// (sds_config.path_config_source).
func SourceFile(path string) string { return "file:" + path }

// Key names a secret within its source.
type Key struct {
	Source string
	Name   string
}

// String is "source:name".
func (k Key) String() string { return k.Source + ":" + k.Name }

// DefaultPollInterval is how often, at most, a watched file is read again.
const DefaultPollInterval = time.Second

// Options configure a Store.
type Options struct {
	// PollInterval bounds how often a watched file is re-read (default
	// DefaultPollInterval).
	PollInterval time.Duration
	// Logger reports files that fail to reload; nil discards.
	Logger hclog.Logger
}

// Store holds every secret of a proxy by Key. It is safe for concurrent
// use; reads on the handshake path take no lock.
type Store struct {
	interval time.Duration

	mu     sync.Mutex
	log    hclog.Logger
	slots  map[Key]*Slot
	files  map[string]*fileSource
	shared map[string]weak.Pointer[tls.Config]
}

// NewStore returns an empty store.
func NewStore(o Options) *Store {
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	return &Store{interval: o.PollInterval, log: o.Logger, slots: map[Key]*Slot{}, files: map[string]*fileSource{},
		shared: map[string]weak.Pointer[tls.Config]{}}
}

// Share returns the config last shared under key while it is still in
// use, else it shares cfg under key and returns it. A converter that
// builds a config over this store's slots from the same settings (key
// digests them) thus hands out the same *tls.Config across snapshots, and
// a cluster that compares its TLS by identity keeps its connections. The
// caller must not modify a config it shared.
func (s *Store) Share(key string, cfg *tls.Config) *tls.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.shared[key].Value(); old != nil {
		return old
	}
	s.shared[key] = weak.Make(cfg)
	runtime.AddCleanup(cfg, func(key string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.shared[key].Value() == nil {
			delete(s.shared, key)
		}
	}, key)
	return cfg
}

// sharedCount is how many shared configs the store tracks (tests).
func (s *Store) sharedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.shared)
}

// SetLogger replaces the logger (the store may be made before the
// server's logger is known).
func (s *Store) SetLogger(l hclog.Logger) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = l
}

func (s *Store) logger() hclog.Logger {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log
}

// Slot returns the slot of k, making an empty one the first time. A slot
// of a watched file (SourceFile) checks the file for changes when read.
func (s *Store) Slot(k Key) *Slot {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sl, ok := s.slots[k]; ok {
		return sl
	}
	sl := &Slot{key: k}
	if path, ok := strings.CutPrefix(k.Source, "file:"); ok {
		sl.file = s.files[path]
	}
	s.slots[k] = sl
	return sl
}

// Set puts sec in force for k; nil makes the secret unavailable (handshakes
// that need it fail).
func (s *Store) Set(k Key, sec *Secret) {
	s.Slot(k).v.Store(sec)
}

// Get returns the secret in force for k, nil when there is none.
func (s *Store) Get(k Key) *Secret {
	s.mu.Lock()
	sl := s.slots[k]
	s.mu.Unlock()
	if sl == nil {
		return nil
	}
	return sl.Load()
}

// Keys lists the keys that hold a secret, sorted.
func (s *Store) Keys() []Key {
	s.mu.Lock()
	slots := make([]*Slot, 0, len(s.slots))
	for _, sl := range s.slots {
		slots = append(slots, sl)
	}
	s.mu.Unlock()
	var out []Key
	for _, sl := range slots {
		if sl.v.Load() != nil {
			out = append(out, sl.key)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// Slot is one secret's current value.
type Slot struct {
	key  Key
	v    atomic.Pointer[Secret]
	file *fileSource // nil unless the secret comes from a watched file
}

// Key is the slot's key.
func (sl *Slot) Key() Key { return sl.key }

// Load returns the secret in force, nil when there is none yet. For a
// watched file, it first reloads the file if the poll interval has passed
// and its content changed.
func (sl *Slot) Load() *Secret {
	if sl.file != nil {
		sl.file.poll()
	}
	return sl.v.Load()
}

// Loader parses the content of a secrets file into secrets by name.
type Loader func(data []byte) (map[string]*Secret, error)

// fileSource is a watched file of secrets. It is polled on the handshake
// path (at most once per interval, by one handshake, the others going on
// with the secrets in force), so it needs no goroutine of its own.
type fileSource struct {
	store *Store
	path  string
	load  Loader
	next  atomic.Int64 // unix nanoseconds of the next check

	mu      sync.Mutex
	content []byte
	lastErr error
}

// WatchFile reads the secrets file at path with load and serves its
// secrets under SourceFile(path); later reads of its slots reload the
// file when it changed. Watching a path twice keeps the first watch. An
// error is the first read's: the file is not watched then.
func (s *Store) WatchFile(path string, load Loader) error {
	s.mu.Lock()
	if _, ok := s.files[path]; ok {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	f := &fileSource{store: s, path: path, load: load}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	secrets, err := load(data)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.files[path]; ok {
		return nil // raced with another WatchFile of the same path
	}
	f.content = data
	f.next.Store(time.Now().Add(s.interval).UnixNano())
	s.files[path] = f
	src := SourceFile(path)
	for k, sl := range s.slots {
		if k.Source == src {
			sl.file = f
		}
	}
	for name, sec := range secrets {
		k := Key{Source: src, Name: name}
		sl, ok := s.slots[k]
		if !ok {
			sl = &Slot{key: k, file: f}
			s.slots[k] = sl
		}
		sl.v.Store(sec)
	}
	return nil
}

// FileError returns the error of the latest reload of a watched file, nil
// when it succeeded or the file is not watched.
func (s *Store) FileError(path string) error {
	s.mu.Lock()
	f := s.files[path]
	s.mu.Unlock()
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastErr
}

// poll reloads the file if it is due and no other reader is at it.
func (f *fileSource) poll() {
	now := time.Now().UnixNano()
	next := f.next.Load()
	if now < next || !f.next.CompareAndSwap(next, now+int64(f.store.interval)) {
		return
	}
	if !f.mu.TryLock() {
		return
	}
	defer f.mu.Unlock()
	if err := f.reloadLocked(); err != nil {
		if f.lastErr == nil || f.lastErr.Error() != err.Error() {
			f.store.logger().Warn("secrets file not reloaded; the secrets in force stay", "path", f.path, "error", err)
		}
		f.lastErr = err
		return
	}
	f.lastErr = nil
}

// reloadLocked reads the file and, if its content changed, puts its
// secrets in force. Every secret served from the file must still be in it,
// or nothing changes.
func (f *fileSource) reloadLocked() error {
	data, err := os.ReadFile(f.path)
	if err != nil {
		return err
	}
	if bytes.Equal(data, f.content) {
		return nil
	}
	secrets, err := f.load(data)
	if err != nil {
		return err
	}
	src := SourceFile(f.path)
	s := f.store
	s.mu.Lock()
	defer s.mu.Unlock()
	var missing []string
	for k, sl := range s.slots {
		if k.Source == src && sl.v.Load() != nil && secrets[k.Name] == nil {
			missing = append(missing, k.Name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("%w: %s", errMissingSecrets, strings.Join(missing, ", "))
	}
	for name, sec := range secrets {
		k := Key{Source: src, Name: name}
		sl, ok := s.slots[k]
		if !ok {
			sl = &Slot{key: k, file: f}
			s.slots[k] = sl
		}
		sl.v.Store(sec)
	}
	f.content = data
	f.store.log.Info("secrets file reloaded", "path", f.path, "secrets", len(secrets))
	return nil
}

var errMissingSecrets = errors.New("secrets in use are no longer in the file")
