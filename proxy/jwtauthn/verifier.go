package jwtauthn

import (
	"encoding/base64"
	"net/http"
	"strings"
)

// verifier checks one requirement against a request.
type verifier interface {
	verify(f *Filter, r *http.Request) Status
}

// compile turns a requirement into its verifier; used are the providers
// named by the sibling requirements of an allow_missing(_or_failed) inside
// requires_any (all providers elsewhere).
func (f *Filter) compile(req *Requirement, used []*provider) verifier {
	if req == nil {
		return allowAll{}
	}
	if len(used) == 0 {
		used = f.all
	}
	switch req.Kind {
	case RequireProvider:
		p := f.providers[req.Provider]
		return &providerVerifier{p: p, audiences: req.Audiences, ext: newExtractor([]*provider{p})}
	case RequireAll:
		v := &allVerifier{}
		for _, ch := range req.Children {
			v.children = append(v.children, f.compile(ch, nil))
		}
		return v
	case RequireAny:
		// As Envoy: the regular requirements in order, then one bypass
		// (allow_missing_or_failed over allow_missing) over their providers.
		v := &anyVerifier{}
		var bypass *Requirement
		var siblings []*provider
		for _, ch := range req.Children {
			switch ch.Kind {
			case AllowMissing, AllowMissingOrFailed:
				if bypass == nil || bypass.Kind == AllowMissing {
					bypass = ch
				}
				continue
			case RequireProvider:
				siblings = append(siblings, f.providers[ch.Provider])
			}
			v.children = append(v.children, f.compile(ch, nil))
		}
		if bypass != nil {
			v.children = append(v.children, f.compile(bypass, siblings))
		}
		return v
	case AllowMissing:
		return &tolerantVerifier{ext: newExtractor(used), allowMissing: true}
	case AllowMissingOrFailed:
		return &tolerantVerifier{ext: newExtractor(used), allowMissing: true, allowFailed: true}
	}
	return allowAll{}
}

// allowAll is a requirement that asks for nothing.
type allowAll struct{}

func (allowAll) verify(*Filter, *http.Request) Status { return OK }

// providerVerifier needs a valid token of one provider: every token found
// in the provider's locations must be valid (a good token next to a bad
// one could fool the backend).
type providerVerifier struct {
	p         *provider
	audiences []string // provider_and_audiences; nil: the provider's
	ext       *extractor
}

func (v *providerVerifier) verify(f *Filter, r *http.Request) Status {
	v.ext.sanitizeHeaders(r.Header)
	toks := v.ext.extract(r)
	if len(toks) == 0 {
		return JwtMissed
	}
	for _, t := range toks {
		if st := f.check(r, t, v.p, v.audiences); st != OK {
			return st
		}
	}
	return OK
}

// tolerantVerifier is allow_missing (tokens may be absent, present ones
// must be valid) and allow_missing_or_failed (anything passes; valid
// tokens are still forwarded with their payload and claims).
type tolerantVerifier struct {
	ext                       *extractor
	allowMissing, allowFailed bool
}

func (v *tolerantVerifier) verify(f *Filter, r *http.Request) Status {
	v.ext.sanitizeHeaders(r.Header)
	for _, t := range v.ext.extract(r) {
		if st := f.check(r, t, nil, nil); st != OK && !v.allowFailed {
			return st
		}
	}
	return OK
}

// anyVerifier needs one of its children; when all fail, the last one's
// status is the answer.
type anyVerifier struct{ children []verifier }

func (v *anyVerifier) verify(f *Filter, r *http.Request) Status {
	st := JwtMissed
	for _, ch := range v.children {
		if st = ch.verify(f, r); st == OK {
			return OK
		}
	}
	return st
}

// allVerifier needs every child; the first failure is the answer.
type allVerifier struct{ children []verifier }

func (v *allVerifier) verify(f *Filter, r *http.Request) Status {
	for _, ch := range v.children {
		if st := ch.verify(f, r); st != OK {
			return st
		}
	}
	return OK
}

// check verifies one token, as Envoy's authenticator: structure, issuer,
// time, audience, then the signature with the provider's keys; p is nil
// when no particular provider is required (the token's issuer picks it).
// A valid token's payload and claims are then added to the request and
// the token removed when its provider does not forward it.
func (f *Filter) check(r *http.Request, t token, p *provider, audiences []string) Status {
	j, st := parseJWT(t.value)
	if st != OK {
		return st
	}
	if !t.loc.issuerAllowed(j.iss) {
		return JwtUnknownIssuer
	}
	if p == nil {
		if p = t.loc.providerFor(j.iss); p == nil {
			return JwtUnknownIssuer
		}
	}
	if st := j.checkTime(f.now(), p.skew); st != OK {
		return st
	}
	if audiences == nil {
		audiences = p.cfg.Audiences
	}
	if !j.audienceAllowed(audiences) {
		return JwtAudienceNotAllowed
	}
	ks, st := p.keys(r.Context())
	if st != OK {
		return st
	}
	if st := ks.verify(j); st != OK {
		return st
	}
	c := p.cfg
	if c.ForwardPayloadHeader != "" {
		v := j.payloadB64
		if c.PadForwardPayloadHeader {
			if b, err := base64.RawURLEncoding.DecodeString(v); err == nil {
				v = base64.URLEncoding.EncodeToString(b)
			}
		}
		r.Header.Add(c.ForwardPayloadHeader, v)
	}
	for _, ch := range c.ClaimToHeaders {
		if v, ok := j.claim(ch.Claim); ok {
			if s := claimHeaderValue(v); s != "" && !strings.ContainsAny(s, "\r\n\x00") {
				r.Header.Add(ch.Header, s)
			}
		}
	}
	if !c.Forward {
		t.remove(r.Header)
	}
	return OK
}
