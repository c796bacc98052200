package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// Envoy's /config_dump shows the value of every field annotated
// sensitive (udpa.annotations.sensitive) as "[redacted]". The dump reaches
// the admin API as protojson, so the fields are found by their JSON names
// (protojson's lowerCamelCase, or the proto names): the DataSources of a
// TlsCertificate's private_key, password and pkcs12, of
// TlsSessionTicketKeys.keys and of GenericSecret.secret — wherever they
// sit (bootstrap static_resources.secrets, inline tls_certificates, SDS
// secrets). Only inline_bytes and inline_string are secret; a filename is
// shown.
var (
	sensitiveKeys = map[string]bool{
		"private_key": true, "privateKey": true,
		"password": true,
		"pkcs12":   true,
	}
	// sensitiveUnder are keys that are sensitive in one message only: the
	// key of that message's owner.
	sensitiveUnder = map[string]map[string]bool{
		"keys":   {"session_ticket_keys": true, "sessionTicketKeys": true},
		"secret": {"generic_secret": true, "genericSecret": true},
	}
	inlineString = map[string]bool{"inline_string": true, "inlineString": true}
	inlineBytes  = map[string]bool{"inline_bytes": true, "inlineBytes": true}
)

// Redacted is what a sensitive value reads as; inline_bytes holds it
// base64-encoded, so the dump still decodes as protojson.
const (
	Redacted       = `"[redacted]"`
	RedactedBase64 = `"W3JlZGFjdGVkXQ=="` // base64("[redacted]")
)

// redactSecrets returns js with every sensitive inline value replaced,
// keeping the rest byte for byte. js must be valid JSON.
func redactSecrets(js []byte) ([]byte, error) {
	type frame struct {
		object bool
		key    string // the object's current key
		owner  string // the key this container sits under (through arrays)
		outer  string // the owner of the nearest enclosing object
	}
	type span struct {
		from, to int64
		with     string
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var stack []frame
	var spans []span
	expectKey := false
	for {
		before := dec.InputOffset()
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if len(stack) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			break
		}
		if err != nil {
			return nil, err
		}
		var top *frame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		if top != nil && top.object && expectKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				expectKey = len(stack) > 0 && stack[len(stack)-1].object
				continue
			}
			top.key, _ = tok.(string)
			expectKey = false
			continue
		}
		// A value: of top's current key, or an array element.
		owner, outer := "", ""
		if top != nil {
			owner, outer = top.owner, top.outer
			if top.object {
				owner, outer = top.key, top.owner
			}
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, frame{object: true, owner: owner, outer: outer})
				expectKey = true
				continue
			case '[':
				stack = append(stack, frame{owner: owner, outer: outer})
				continue
			default: // ']'
				stack = stack[:len(stack)-1]
			}
		case string:
			if top != nil && top.object && sensitive(top.owner, top.outer) {
				switch {
				case inlineString[top.key]:
					spans = append(spans, span{valueStart(js, before), dec.InputOffset(), Redacted})
				case inlineBytes[top.key]:
					spans = append(spans, span{valueStart(js, before), dec.InputOffset(), RedactedBase64})
				}
			}
		}
		expectKey = len(stack) > 0 && stack[len(stack)-1].object
	}
	if len(spans) == 0 {
		return js, nil
	}
	var out bytes.Buffer
	out.Grow(len(js))
	last := int64(0)
	for _, s := range spans {
		out.Write(js[last:s.from])
		out.WriteString(s.with)
		last = s.to
	}
	out.Write(js[last:])
	return out.Bytes(), nil
}

// sensitive tells whether a DataSource sitting under key owner (in an
// object sitting under outer) holds a secret.
func sensitive(owner, outer string) bool {
	return sensitiveKeys[owner] || sensitiveUnder[owner][outer]
}

// valueStart finds where the value after a key begins: past the colon and
// white space that follow offset (the end of the key).
func valueStart(js []byte, offset int64) int64 {
	i := offset
	for i < int64(len(js)) && js[i] != '"' {
		i++
	}
	return i
}
