package bootstrap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoregistry"
	"sigs.k8s.io/yaml"

	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// DecodeError is a file that does not decode into a Bootstrap: bad YAML or
// JSON, an unknown field, a typed_config of a type we do not know. Path is
// the field path when it could be found.
type DecodeError struct {
	Source string // the file name, or "--config-yaml"
	Path   string
	Err    error
}

func (e *DecodeError) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *DecodeError) Unwrap() error { return e.Err }

// decode turns YAML or JSON (JSON is YAML) into a Bootstrap.
func decode(source string, data []byte) (*bootstrapv3.Bootstrap, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, &DecodeError{Source: source, Err: locateYAML(data, err)}
	}
	js = bytes.TrimSpace(js)
	if len(js) == 0 || string(js) == "null" {
		return nil, &DecodeError{Source: source, Err: errors.New("empty configuration")}
	}
	if js[0] != '{' {
		// protojson's complaint would point at column 1 of the JSON
		// form, which the author of a YAML file never saw.
		return nil, &DecodeError{Source: source, Err: fmt.Errorf("the top level must be a mapping of Bootstrap fields, not %s", jsonKind(js[0]))}
	}
	keys, err := scanKeys(js)
	if err != nil {
		return nil, &DecodeError{Source: source, Err: err}
	}
	// protojson's "unable to resolve" carries no path: find every @type it
	// could not resolve first, with where it sits.
	var unknown []resource.FieldError
	for _, k := range keys {
		if k.typeURL == "" {
			continue
		}
		if _, err := protoregistry.GlobalTypes.FindMessageByURL(k.typeURL); err != nil {
			// The Any holding it; at the top level, where no Any can be,
			// the key itself.
			p := k.parent
			if p == "" {
				p = k.path
			}
			unknown = append(unknown, resource.FieldError{Path: p, Reason: k.typeURL + " is not supported yet"})
		}
	}
	if len(unknown) > 0 {
		return nil, &resource.UnsupportedError{Fields: unknown}
	}
	bs := &bootstrapv3.Bootstrap{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, bs); err != nil {
		return nil, &DecodeError{Source: source, Path: pathAt(keys, err), Err: cleanProtojsonErr(err)}
	}
	return bs, nil
}

// yamlLine is the position go-yaml puts in most of its errors.
var yamlLine = regexp.MustCompile(`\bline \d+\b`)

// yamlDecoderProblems are go-yaml's complaints about the document's
// structure rather than about a place in its text: their message names
// what is wrong (an anchor, a key) or it is the whole document.
var yamlDecoderProblems = []string{
	"anchor '", "excessive aliasing", "!!binary", "invalid array", "invalid map key",
	"map merge requires", "cannot decode", "past the end of stream", "unsupported map key",
}

// locateYAML gives a position to a YAML error that has none. go-yaml
// leaves it out for a character its reader refuses (found here by
// scanning for it) and for a syntax error on the first line (its lines
// start at 0 and 0 is left out).
func locateYAML(data []byte, err error) error {
	msg := err.Error()
	if yamlLine.MatchString(msg) {
		return err
	}
	if line, col, ok := badCharacter(data); ok {
		return fmt.Errorf("line %d, column %d: %w", line, col, err)
	}
	for _, p := range yamlDecoderProblems {
		if strings.Contains(msg, p) {
			return err
		}
	}
	return fmt.Errorf("line 1: %w", err)
}

// badCharacter finds the first byte sequence YAML does not allow: invalid
// UTF-8, or a control or non-character code point (YAML 1.1's printable
// set). line and column count from 1, the column in characters.
func badCharacter(data []byte) (line, col int, ok bool) {
	line, col = 1, 1
	for len(data) > 0 {
		r, n := utf8.DecodeRune(data)
		switch {
		case r == utf8.RuneError && n == 1,
			r < 0x20 && r != '\t' && r != '\n' && r != '\r',
			r >= 0x7f && r <= 0x9f && r != 0x85,
			r >= 0xd800 && r <= 0xdfff, r == 0xfffe, r == 0xffff:
			return line, col, true
		case r == '\n':
			line, col = line+1, 1
		default:
			col++
		}
		data = data[n:]
	}
	return 0, 0, false
}

// jsonKind names the JSON value starting with c.
func jsonKind(c byte) string {
	switch c {
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}

// key is one object key of the JSON document: where it starts and its path.
type key struct {
	offset  int64
	path    string // e.g. static_resources.clusters[0].name
	parent  string // the object holding it
	typeURL string // the value, for "@type" keys
}

// scanKeys records every object key with its path, so protojson's error
// positions can be turned into field paths.
func scanKeys(js []byte) ([]key, error) {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var keys []key
	var walk func(path string) error
	walk = func(path string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			for dec.More() {
				start := dec.InputOffset()
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				name, _ := kt.(string)
				k := key{offset: start, path: keyPath(path, name), parent: path}
				if name == "@type" {
					vt, err := dec.Token()
					if err != nil {
						return err
					}
					k.typeURL, _ = vt.(string)
					keys = append(keys, k)
					continue
				}
				keys = append(keys, k)
				if err := walk(k.path); err != nil {
					return err
				}
			}
			_, err = dec.Token() // '}'
			return err
		case json.Delim('['):
			for i := 0; dec.More(); i++ {
				if err := walk(resource.Index(path, i)); err != nil {
					return err
				}
			}
			_, err = dec.Token() // ']'
			return err
		}
		return nil
	}
	if err := walk(""); err != nil && err != io.EOF {
		return nil, err
	}
	sort.SliceStable(keys, func(i, j int) bool { return keys[i].offset < keys[j].offset })
	return keys, nil
}

// keyPath is the path of the key name inside the object at path: a.b for
// a field name, a["x y"] for a key no field could have (an empty one
// would otherwise vanish from the path).
func keyPath(path, name string) string {
	fieldLike := name != ""
	for i := 0; i < len(name) && fieldLike; i++ {
		c := name[i]
		fieldLike = c == '_' || c == '@' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
	}
	if !fieldLike {
		return resource.Key(path, name)
	}
	return resource.Join(path, name)
}

var protojsonPos = regexp.MustCompile(`\(line (\d+):(\d+)\)`)

// pathAt finds the key at protojson's error position. YAMLToJSON output is
// one line, so the column is the byte offset plus one.
func pathAt(keys []key, err error) string {
	m := protojsonPos.FindStringSubmatch(err.Error())
	if m == nil || m[1] != "1" {
		return ""
	}
	col, _ := strconv.ParseInt(m[2], 10, 64)
	pos := col - 1
	path := ""
	for _, k := range keys {
		if k.offset > pos {
			break
		}
		path = k.path
	}
	return path
}

// cleanProtojsonErr drops the "proto: (line 1:123): " prefix, meaningless to
// someone who wrote YAML.
func cleanProtojsonErr(err error) error {
	s := err.Error()
	if loc := protojsonPos.FindStringIndex(s); loc != nil {
		s = strings.TrimPrefix(strings.TrimSpace(s[loc[1]:]), ": ")
		return fmt.Errorf("%s", s)
	}
	return err
}
