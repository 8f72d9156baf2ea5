package users

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

// Entry is one account of the users file.
type Entry struct {
	Name        string `yaml:"name"`
	Bcrypt      string `yaml:"bcrypt"`
	ScramSHA256 *Scram `yaml:"scram-sha-256,omitempty"`
	ScramSHA512 *Scram `yaml:"scram-sha-512,omitempty"`
}

// File is the users file.
type File struct {
	Users []Entry `yaml:"users"`
}

// ErrUsersFile is wrapped by errors about the file's content.
var ErrUsersFile = errors.New("users: invalid users file")

// ErrUserName is wrapped by ValidName's errors (in a file's entry, by
// ErrUsersFile too).
var ErrUserName = errors.New("users: invalid user name")

// NewEntry hashes password for every protocol.
func NewEntry(name, password string) (Entry, error) {
	if err := ValidName(name); err != nil {
		return Entry{}, err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Name: name, Bcrypt: string(h)}
	s256, err := NewScram(ScramSHA256, password, DefaultIterations)
	if err != nil {
		return Entry{}, err
	}
	s512, err := NewScram(ScramSHA512, password, DefaultIterations)
	if err != nil {
		return Entry{}, err
	}
	e.ScramSHA256, e.ScramSHA512 = &s256, &s512
	return e, nil
}

// ValidName refuses names no protocol can carry.
func ValidName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrUserName)
	case strings.ContainsAny(name, ":,= \t\r\n\x00"):
		return fmt.Errorf("%w %q: no ':', ',', '=', space or control characters", ErrUserName, name)
	case name == "ANONYMOUS" || name == "*":
		return fmt.Errorf("%w %q: reserved", ErrUserName, name)
	}
	return nil
}

// ReadFile reads and checks a users file; a missing file is an empty one.
func ReadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &File{}, nil
	}
	if err != nil {
		return nil, err
	}
	f := &File{}
	if err := yaml.Unmarshal(b, f); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUsersFile, path, err)
	}
	seen := map[string]bool{}
	for i, e := range f.Users {
		if err := ValidName(e.Name); err != nil {
			return nil, fmt.Errorf("%w: %s: users[%d]: %w", ErrUsersFile, path, i, err)
		}
		if seen[e.Name] {
			return nil, fmt.Errorf("%w: %s: user %q listed twice", ErrUsersFile, path, e.Name)
		}
		seen[e.Name] = true
		if !strings.HasPrefix(e.Bcrypt, "$2") {
			return nil, fmt.Errorf("%w: %s: user %q: bcrypt is not a bcrypt hash", ErrUsersFile, path, e.Name)
		}
	}
	return f, nil
}

// WriteFile writes f atomically with mode 0600.
func WriteFile(path string, f *File) error {
	b, err := yaml.Marshal(f)
	if err != nil {
		return err
	}
	b = append([]byte("# runnel users file: edit with `runnel user add|del|list` (hashes only)\n"), b...)
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".users-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Set adds or replaces e.
func (f *File) Set(e Entry) {
	for i := range f.Users {
		if f.Users[i].Name == e.Name {
			f.Users[i] = e
			return
		}
	}
	f.Users = append(f.Users, e)
	// sort.Slice, not slices.SortFunc: a generic sort is compiled again for
	// each element type (about 10 KB of the binary each).
	sort.Slice(f.Users, func(i, j int) bool { return f.Users[i].Name < f.Users[j].Name })
}

// Delete removes name; false when there was none.
func (f *File) Delete(name string) bool {
	n := len(f.Users)
	f.Users = slices.DeleteFunc(f.Users, func(e Entry) bool { return e.Name == name })
	return len(f.Users) != n
}

// Store answers password and SCRAM checks. Safe for concurrent use;
// Replace swaps its accounts (a users file read again on SIGHUP).
type Store struct {
	entries atomic.Pointer[map[string]*account]

	mu    sync.Mutex
	cache map[string][32]byte // guarded by mu: SHA-256 of the last password that matched bcrypt
}

type account struct {
	bcrypt []byte
	clear  []byte // a password given in clear (kafka.users), kept in memory only
	scram  map[string]Scram
}

// NewStore builds a store from the users file's entries and accounts
// given in clear (name → password: the deprecated kafka.users), whose
// SCRAM credentials are derived here.
func NewStore(entries []Entry, clear map[string]string) (*Store, error) {
	s := &Store{cache: map[string][32]byte{}}
	if err := s.Replace(entries, clear); err != nil {
		return nil, err
	}
	return s, nil
}

// Replace swaps the accounts for these (as NewStore builds them); a
// client that authenticated before keeps its session.
func (s *Store) Replace(entries []Entry, inClear map[string]string) error {
	m := map[string]*account{}
	for _, e := range entries {
		a := &account{bcrypt: []byte(e.Bcrypt), scram: map[string]Scram{}}
		if e.ScramSHA256 != nil {
			a.scram[ScramSHA256] = *e.ScramSHA256
		}
		if e.ScramSHA512 != nil {
			a.scram[ScramSHA512] = *e.ScramSHA512
		}
		m[e.Name] = a
	}
	for name, pass := range inClear {
		if _, dup := m[name]; dup {
			return fmt.Errorf("%w: user %q is both in the users file and given in clear", ErrUsersFile, name)
		}
		a := &account{clear: []byte(pass), scram: map[string]Scram{}}
		for _, mech := range []string{ScramSHA256, ScramSHA512} {
			c, err := NewScram(mech, pass, DefaultIterations)
			if err != nil {
				return err
			}
			a.scram[mech] = c
		}
		m[name] = a
	}
	s.entries.Store(&m)
	s.mu.Lock()
	clear(s.cache)
	s.mu.Unlock()
	return nil
}

// Len is the number of accounts.
func (s *Store) Len() int {
	if s == nil {
		return 0
	}
	return len(*s.entries.Load())
}

// Names lists the accounts, sorted.
func (s *Store) Names() []string {
	var out []string
	for n := range *s.entries.Load() {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// CheckPassword reports whether password is user's. An unknown user
// costs as much as a known one.
func (s *Store) CheckPassword(user string, password []byte) bool {
	a, ok := (*s.entries.Load())[user]
	if !ok {
		_ = bcrypt.CompareHashAndPassword(dummyHash(), password)
		return false
	}
	if a.clear != nil {
		return subtle.ConstantTimeCompare(a.clear, password) == 1
	}
	sum := sha256.Sum256(password)
	s.mu.Lock()
	c, cached := s.cache[user]
	s.mu.Unlock()
	if cached && subtle.ConstantTimeCompare(c[:], sum[:]) == 1 {
		return true
	}
	if bcrypt.CompareHashAndPassword(a.bcrypt, password) != nil {
		return false
	}
	s.mu.Lock()
	s.cache[user] = sum
	s.mu.Unlock()
	return true
}

// SCRAM returns user's credential for mech.
func (s *Store) SCRAM(user, mech string) (Scram, bool) {
	a, ok := (*s.entries.Load())[user]
	if !ok {
		return Scram{}, false
	}
	c, ok := a.scram[mech]
	return c, ok
}

// BcryptEntries are the accounts of the users file with their bcrypt
// hashes (for the MQTT broker's user list).
func (f *File) BcryptEntries() map[string]string {
	out := map[string]string{}
	for _, e := range f.Users {
		out[e.Name] = e.Bcrypt
	}
	return out
}

var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("runnel"), bcrypt.DefaultCost)
	return h
})
