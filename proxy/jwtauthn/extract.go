package jwtauthn

import (
	"net/http"
	"net/url"
	"strings"
)

// location is one place tokens are looked for, with the providers that
// named it.
type location struct {
	header string // canonical header name, or
	prefix string // value_prefix within it
	param  string // query parameter, or
	cookie string // cookie name
	// providers that look here; issuers is theirs, "" when one of them
	// takes any issuer.
	providers []*provider
}

// issuerAllowed is Envoy's check that a token found here may come from
// iss: one of the location's providers has that issuer or none at all.
func (l *location) issuerAllowed(iss string) bool {
	for _, p := range l.providers {
		if p.cfg.Issuer == "" || p.cfg.Issuer == iss {
			return true
		}
	}
	return false
}

// providerFor is the provider that checks a token from iss found here
// when no particular provider is required: the first with that issuer,
// else the first with none.
func (l *location) providerFor(iss string) *provider {
	for _, p := range l.providers {
		if p.cfg.Issuer == iss {
			return p
		}
	}
	for _, p := range l.providers {
		if p.cfg.Issuer == "" {
			return p
		}
	}
	return nil
}

// extractor finds the tokens of a set of providers.
type extractor struct {
	locs []*location
	// sanitize are the headers the providers fill (forward_payload_header,
	// claim_to_headers): a request's own values are removed first, so a
	// client cannot pass them off as verified.
	sanitize []string
}

func newExtractor(providers []*provider) *extractor {
	e := &extractor{}
	find := func(l location) *location {
		for _, have := range e.locs {
			if have.header == l.header && have.prefix == l.prefix && have.param == l.param && have.cookie == l.cookie {
				return have
			}
		}
		n := &l
		e.locs = append(e.locs, n)
		return n
	}
	seen := map[string]bool{}
	addSanitize := func(h string) {
		h = http.CanonicalHeaderKey(h)
		if !seen[h] {
			seen[h] = true
			e.sanitize = append(e.sanitize, h)
		}
	}
	for _, p := range providers {
		c := p.cfg
		var locs []location
		for _, h := range c.FromHeaders {
			locs = append(locs, location{header: http.CanonicalHeaderKey(h.Name), prefix: h.ValuePrefix})
		}
		for _, q := range c.FromParams {
			locs = append(locs, location{param: q})
		}
		for _, ck := range c.FromCookies {
			locs = append(locs, location{cookie: ck})
		}
		if len(locs) == 0 {
			locs = []location{{header: "Authorization", prefix: "Bearer "}, {param: "access_token"}}
		}
		for _, l := range locs {
			at := find(l)
			at.providers = append(at.providers, p)
		}
		if c.ForwardPayloadHeader != "" {
			addSanitize(c.ForwardPayloadHeader)
		}
		for _, ch := range c.ClaimToHeaders {
			addSanitize(ch.Header)
		}
	}
	return e
}

// token is one token found in a request.
type token struct {
	value string
	loc   *location
}

// sanitizeHeaders removes the headers the providers fill.
func (e *extractor) sanitizeHeaders(h http.Header) {
	for _, n := range e.sanitize {
		delete(h, n)
	}
}

// extract returns the tokens of r, one per location at most.
func (e *extractor) extract(r *http.Request) []token {
	var out []token
	var query url.Values
	for _, l := range e.locs {
		var v string
		switch {
		case l.header != "":
			vs := r.Header[l.header]
			if len(vs) == 0 {
				continue
			}
			v = jwtAfter(strings.Join(vs, ","), l.prefix)
		case l.param != "":
			if query == nil {
				query = r.URL.Query()
			}
			v = query.Get(l.param)
		case l.cookie != "":
			if c, err := r.Cookie(l.cookie); err == nil {
				v = c.Value
			}
		}
		if v != "" {
			out = append(out, token{value: v, loc: l})
		}
	}
	return out
}

// jwtAfter is Envoy's header extraction: the token starts after prefix
// and runs while the characters are base64url or '.'.
func jwtAfter(value, prefix string) string {
	i := strings.Index(value, prefix)
	if i < 0 {
		return ""
	}
	value = value[i+len(prefix):]
	end := strings.IndexFunc(value, func(c rune) bool {
		return !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.')
	})
	if end >= 0 {
		value = value[:end]
	}
	return value
}

// remove takes a verified token out of the request when its provider does
// not forward it: the header that carried it goes (as Envoy; tokens in
// query parameters and cookies stay, as in Envoy).
func (t token) remove(h http.Header) {
	if t.loc.header != "" {
		delete(h, t.loc.header)
	}
}
