package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// key is one configuration key: a leaf of the tree with its names, default
// and documentation (see the doc at the top of config.go).
type key struct {
	path   string // dotted path in the tree = nested YAML keys
	flag   string // flag, RUNNEL_ variable and flat YAML alias; "" = file only
	def    string // default as flag text; "" = the zero value
	defDoc string // the README's default column when def does not say it
	doc    string // one line for --help and the README (markdown)
	noFile bool   // not accepted in the config file (config itself)
	v      value
	check  func() error // the key's own rule, run by validate

	from string // where the value came from: default, flag, variable, file line
}

// errorf reports a problem with k's value, naming the key and its source.
func (k *key) errorf(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	msg = strings.ReplaceAll(strings.ReplaceAll(msg, "\n  ", " "), "\n", " ")
	return fmt.Errorf("config: %s (%s): %s", k.path, k.from, msg)
}

// value is a tree field as every source sets it.
type value interface {
	pflag.Value                            // String, Type, Set (a list's Set appends: repeatable flag)
	setEnv(s string) error                 // the whole value from one string (lists: comma-separated)
	setYAML(n *yaml.Node, at string) error // the whole value from a YAML node at path at
}

// envName is the environment variable for flat name flag.
func envName(flag string) string {
	return "RUNNEL_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// newServeConfig returns the tree with every default set.
func newServeConfig() *serveConfig {
	c := &serveConfig{}
	c.table = c.keys()
	for _, k := range c.table {
		k.from = "default"
		if k.def == "" {
			continue
		}
		if err := k.v.Set(k.def); err != nil {
			panic(fmt.Sprintf("config: default of %s: %v", k.path, err))
		}
	}
	return c
}

// newServeFlags registers a flag for every key that has a flat name.
func newServeFlags(c *serveConfig) *pflag.FlagSet {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.SortFlags = false
	// A bad flag gets one line (printed by runServe), not the whole usage;
	// --help prints the usage itself.
	fs.Usage = func() {}
	for _, k := range c.table {
		if k.flag == "" {
			continue
		}
		// pflag takes a `quoted` word of the usage as the argument's name.
		usage := k.doc
		if k.defDoc != "" {
			// Prose, not a value: pflag would quote it as one
			// (default "generated").
			usage += " (default: " + k.defDoc + ")"
		}
		fs.Var(k.v, k.flag, strings.ReplaceAll(usage, "`", ""))
		f := fs.Lookup(k.flag)
		f.DefValue = k.def
		if k.v.Type() == "bool" {
			f.NoOptDefVal = "true"
		}
	}
	return fs
}

// loadServeConfig fills the tree from args, the config file and the
// environment (flag > environment > file > default) and validates it.
func loadServeConfig(args []string, env func(string) (string, bool), stderr io.Writer) (*serveConfig, *pflag.FlagSet, error) {
	c := newServeConfig()
	fs := newServeFlags(c)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		// A value the key's type refuses reads as any other config error
		// (the key, its source, why), not in pflag's own words.
		var bad *pflag.InvalidValueError
		if errors.As(err, &bad) {
			for _, k := range c.table {
				if k.flag != "" && k.flag == bad.GetFlag().Name {
					k.from = "flag --" + k.flag
					cause := bad.Unwrap().Error()
					if !strings.Contains(cause, bad.GetValue()) {
						cause = fmt.Sprintf("%q: %s", bad.GetValue(), cause)
					}
					return nil, fs, k.errorf("%s", cause)
				}
			}
		}
		return nil, fs, err
	}
	if fs.NArg() > 0 {
		return nil, fs, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	onCmdline := map[*key]bool{}
	for _, k := range c.table {
		if k.flag != "" && fs.Changed(k.flag) {
			onCmdline[k] = true
			k.from = "flag --" + k.flag
		}
	}
	// The file is named by flag or environment only; read it before the
	// other variables, which override it.
	if err := c.applyEnv(env, onCmdline, func(k *key) bool { return k.path == "config" }); err != nil {
		return nil, fs, err
	}
	if c.ConfigFile != "" {
		if err := c.applyFile(c.ConfigFile, onCmdline); err != nil {
			return nil, fs, err
		}
	}
	if err := c.applyEnv(env, onCmdline, func(k *key) bool { return k.path != "config" }); err != nil {
		return nil, fs, err
	}
	return c, fs, c.validate()
}

// applyEnv sets the keys selected by which from RUNNEL_ variables, except
// those given on the command line.
func (c *serveConfig) applyEnv(env func(string) (string, bool), onCmdline map[*key]bool, which func(*key) bool) error {
	for _, k := range c.table {
		if k.flag == "" || onCmdline[k] || !which(k) {
			continue
		}
		v, ok := env(envName(k.flag))
		if !ok {
			continue
		}
		k.from = envName(k.flag)
		if err := k.v.setEnv(v); err != nil {
			return k.errorf("%q: %v", v, err)
		}
	}
	return nil
}

// unknownKeyError is a key of the config file that the tree lacks.
type unknownKeyError struct {
	path string
	line int
}

func (e *unknownKeyError) Error() string {
	return fmt.Sprintf("line %d: unknown key %q", e.line, e.path)
}

// applyFile sets the keys the YAML file names, except those given on the
// command line. Each key may appear nested (kafka: {addr: …}) or, when it
// has a flat name, as that name at top level (kafka-addr: …), not both.
func (c *serveConfig) applyFile(file string, onCmdline map[*key]bool) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("config file: %v", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config file %s: %v", file, err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
		return nil // empty or only comments
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("config file %s line %d: want a mapping of keys", file, root.Line)
	}
	f := &fileApply{c: c, file: file, onCmdline: onCmdline, seen: map[*key]string{}, byPath: map[string]*key{}, byFlag: map[string]*key{}, branch: map[string]bool{}}
	for _, k := range c.table {
		f.byPath[k.path] = k
		if k.flag != "" {
			f.byFlag[k.flag] = k
		}
		for p := k.path; strings.Contains(p, "."); {
			p = p[:strings.LastIndexByte(p, '.')]
			f.branch[p] = true
		}
	}
	err = f.mapping(root, "")
	var uk *unknownKeyError
	if errors.As(err, &uk) {
		return fmt.Errorf("config file %s line %d: unknown key %q", file, uk.line, uk.path)
	}
	return err
}

type fileApply struct {
	c         *serveConfig
	file      string
	onCmdline map[*key]bool
	seen      map[*key]string // where the file set each key
	byPath    map[string]*key
	byFlag    map[string]*key
	branch    map[string]bool // inner nodes of the tree ("kafka", "mqtt.tls")
}

func (f *fileApply) mapping(m *yaml.Node, prefix string) error {
	for i := 0; i+1 < len(m.Content); i += 2 {
		kn, vn := m.Content[i], m.Content[i+1]
		path := prefix + kn.Value
		k := f.byPath[path]
		if k == nil && prefix == "" {
			k = f.byFlag[kn.Value]
		}
		where := fmt.Sprintf("file %s line %d", f.file, kn.Line)
		switch {
		case k != nil && !k.noFile:
			if prev, dup := f.seen[k]; dup {
				return fmt.Errorf("config: %s set twice in the config file (%s and line %d)", k.path, prev, kn.Line)
			}
			f.seen[k] = where
			if f.onCmdline[k] {
				continue
			}
			k.from = where
			if err := k.v.setYAML(vn, k.path); err != nil {
				var uk *unknownKeyError
				if errors.As(err, &uk) {
					return err
				}
				return k.errorf("%v", err)
			}
		case f.branch[path]:
			if vn.Tag == "!!null" {
				continue // an empty section
			}
			if vn.Kind != yaml.MappingNode {
				return fmt.Errorf("config: %s (%s): want a mapping of keys", path, where)
			}
			if err := f.mapping(vn, path+"."); err != nil {
				return err
			}
		default:
			return &unknownKeyError{path, kn.Line}
		}
	}
	return nil
}

// scalar is a single value parsed from text.
type scalar[T any] struct {
	p     *T
	parse func(string) (T, error)
	typ   string
}

func (s *scalar[T]) String() string {
	if b, ok := any(*s.p).(*bool); ok {
		if b == nil {
			return ""
		}
		return strconv.FormatBool(*b)
	}
	return fmt.Sprint(*s.p)
}
func (s *scalar[T]) Type() string { return s.typ }
func (s *scalar[T]) Set(v string) error {
	x, err := s.parse(v)
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		switch {
		case s.typ == "bool":
			return fmt.Errorf("%q: want true or false", v)
		case errors.Is(ne.Err, strconv.ErrRange):
			return fmt.Errorf("%q: out of range", v)
		default:
			return fmt.Errorf("%q: want an integer", v)
		}
	}
	if err != nil {
		return err
	}
	*s.p = x
	return nil
}
func (s *scalar[T]) setEnv(v string) error { return s.Set(v) }
func (s *scalar[T]) setYAML(n *yaml.Node, _ string) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a single value", n.Line)
	}
	return s.Set(n.Value)
}

func str(p *string) value {
	return &scalar[string]{p, func(s string) (string, error) { return s, nil }, "string"}
}
func dur(p *time.Duration) value { return &scalar[time.Duration]{p, time.ParseDuration, "duration"} }
func boolean(p *bool) value      { return &scalar[bool]{p, strconv.ParseBool, "bool"} }
func i32(p *int32) value {
	return &scalar[int32]{p, func(s string) (int32, error) { v, err := strconv.ParseInt(s, 0, 32); return int32(v), err }, "int32"}
}
func i64(p *int64) value {
	return &scalar[int64]{p, func(s string) (int64, error) { return strconv.ParseInt(s, 0, 64) }, "int64"}
}
func integer(p *int) value {
	return &scalar[int]{p, func(s string) (int, error) { v, err := strconv.ParseInt(s, 0, strconv.IntSize); return int(v), err }, "int"}
}

// optBool is a bool whose default depends on other keys: nil until a
// source sets it.
func optBool(p **bool) value {
	return &scalar[*bool]{p, func(s string) (*bool, error) { b, err := strconv.ParseBool(s); return &b, err }, "bool"}
}

// listValue is a repeatable value: each flag appends one item; the environment
// gives comma-separated items; YAML gives a sequence (or one item), where
// an item is the flag's text or, for structured items, a mapping.
type listValue[T any] struct {
	p     *[]T
	parse func(string) (T, error) // nil: T is string
	valid func(T) error           // optional check of a mapping item
	opts  []string                // an item's options, written after a comma in its text (envItems)
}

func (l *listValue[T]) String() string { return fmt.Sprint(*l.p) }
func (l *listValue[T]) Type() string   { return "stringArray" }
func (l *listValue[T]) Set(v string) error {
	var x T
	if l.parse == nil {
		reflect.ValueOf(&x).Elem().SetString(v)
	} else {
		var err error
		if x, err = l.parse(v); err != nil {
			return err
		}
	}
	*l.p = append(*l.p, x)
	return nil
}
func (l *listValue[T]) setEnv(v string) error {
	*l.p = nil
	for _, s := range envItems(v, l.opts) {
		if err := l.Set(s); err != nil {
			return err
		}
	}
	return nil
}
func (l *listValue[T]) setYAML(n *yaml.Node, at string) error {
	*l.p = nil
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
	}
	for i, it := range items {
		if it.Kind == yaml.ScalarNode {
			if err := l.Set(it.Value); err != nil {
				return fmt.Errorf("[%d]: %v", i, err)
			}
			continue
		}
		var x T
		if err := decodeKnown(it, &x, fmt.Sprintf("%s[%d]", at, i)); err != nil {
			return err
		}
		if l.valid != nil {
			if err := l.valid(x); err != nil {
				return fmt.Errorf("[%d]: %v", i, err)
			}
		}
		*l.p = append(*l.p, x)
	}
	return nil
}

func strList(p *[]string, parse func(string) (string, error)) value {
	return &listValue[string]{p: p, parse: parse}
}

// Go infers T from the parse function (mqtt.ParseRoute → mqtt.Route).
// list is a repeatable value; opts names the options an item's text takes
// after a comma (`FILTER=TOPIC,key=client,acks=all`), which keep the
// environment's comma-separated list from splitting the item (envItems).
func list[T any](p *[]T, parse func(string) (T, error), valid func(T) error, opts ...string) value {
	return &listValue[T]{p: p, parse: parse, valid: valid, opts: opts}
}

// fileOnly is a structured value set only by the config file.
type fileOnlyValue[T any] struct{ p *T }

func fileOnly[T any](p *T) value { return &fileOnlyValue[T]{p} }

func (f *fileOnlyValue[T]) String() string { return "" }
func (f *fileOnlyValue[T]) Type() string   { return "yaml" }
func (f *fileOnlyValue[T]) Set(string) error {
	return errors.New("set in the config file only")
}
func (f *fileOnlyValue[T]) setEnv(v string) error { return f.Set(v) }
func (f *fileOnlyValue[T]) setYAML(n *yaml.Node, at string) error {
	var zero T
	*f.p = zero
	return decodeKnown(n, f.p, at)
}

// decodeKnown decodes n into v after refusing keys v's type does not have
// (with their line and path, which yaml's own strict mode cannot give for
// a node).
func decodeKnown(n *yaml.Node, v any, at string) error {
	if err := checkKnown(n, reflect.TypeOf(v), at); err != nil {
		return err
	}
	return n.Decode(v)
}

func checkKnown(n *yaml.Node, t reflect.Type, at string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			if name == "-" || !sf.IsExported() {
				continue
			}
			if name == "" {
				name = strings.ToLower(sf.Name)
			}
			fields[name] = sf.Type
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn := n.Content[i]
			ft, ok := fields[kn.Value]
			if !ok {
				return &unknownKeyError{at + "." + kn.Value, kn.Line}
			}
			if err := checkKnown(n.Content[i+1], ft, at+"."+kn.Value); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkKnown(n.Content[i+1], t.Elem(), at+"."+n.Content[i].Value); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, it := range n.Content {
			if err := checkKnown(it, t.Elem(), fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// envItems splits an environment variable's comma-separated list into
// items, where a piece that starts with one of opts followed by "=" is an
// option of the item before it, not an item: with opts key and acks,
// `a/#=t1,key=client,acks=all,b/#=t2` is two items.
func envItems(v string, opts []string) []string {
	var out []string
	for _, s := range splitList(v) {
		if len(out) > 0 && isOption(s, opts) {
			out[len(out)-1] += "," + s
			continue
		}
		out = append(out, s)
	}
	return out
}

func isOption(s string, opts []string) bool {
	for _, o := range opts {
		if strings.HasPrefix(s, o+"=") {
			return true
		}
	}
	return false
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Checks for keys: each returns the rule as a closure over the field.

type number interface{ ~int | ~int32 | ~int64 }

func positive[T number](p *T) func() error {
	return func() error {
		if *p <= 0 {
			return fmt.Errorf("must be > 0, not %v", *p)
		}
		return nil
	}
}

func notNegative[T number](p *T) func() error {
	return func() error {
		if *p < 0 {
			return fmt.Errorf("must not be negative, not %v", *p)
		}
		return nil
	}
}

func atLeast[T number](p *T, min T) func() error {
	return func() error {
		if *p < min {
			return fmt.Errorf("must be at least %v, not %v", min, *p)
		}
		return nil
	}
}

func between[T number](p *T, lo, hi T) func() error {
	return func() error {
		if *p < lo || *p > hi {
			return fmt.Errorf("must be %v..%v, not %v", lo, hi, *p)
		}
		return nil
	}
}

func oneOf(p *string, vals ...string) func() error {
	return func() error {
		for _, v := range vals {
			if *p == v {
				return nil
			}
		}
		return fmt.Errorf("%q: want %s or %s", *p, strings.Join(vals[:len(vals)-1], ", "), vals[len(vals)-1])
	}
}

func nonEmpty(p *string) func() error {
	return func() error {
		if *p == "" {
			return errors.New("must not be empty")
		}
		return nil
	}
}

func addr(p *string) func() error {
	return func() error {
		if err := checkAddr(*p); err != nil {
			return fmt.Errorf("%q: %v", *p, err)
		}
		return nil
	}
}

func each[T any](p *[]T, check func(T) error) func() error {
	return func() error {
		for i, x := range *p {
			if err := check(x); err != nil {
				return fmt.Errorf("[%d]: %v", i, err)
			}
		}
		return nil
	}
}
