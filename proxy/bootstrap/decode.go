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
		return nil, &DecodeError{Source: source, Err: err}
	}
	js = bytes.TrimSpace(js)
	if len(js) == 0 || string(js) == "null" {
		return nil, &DecodeError{Source: source, Err: errors.New("empty configuration")}
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
			unknown = append(unknown, resource.FieldError{Path: k.parent, Reason: k.typeURL + " is not supported yet"})
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
				k := key{offset: start, path: resource.Join(path, name), parent: path}
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
