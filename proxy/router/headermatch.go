package router

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// HeaderMatchers is a compiled list of Envoy header matchers, for the
// filters and policies that match headers outside a route (fault
// injection, retry conditions): one implementation of Envoy's
// HeaderUtility::matchHeaders for the whole proxy.
type HeaderMatchers struct{ ms []headerMatcher }

// CompileHeaderMatchers checks and compiles request matchers (pseudo-headers
// :authority, :method, :path, :scheme); errors name the field
// (field + "[i]...").
func CompileHeaderMatchers(field string, hms []HeaderMatcher) (HeaderMatchers, error) {
	return compileMatchers(field, hms, false)
}

// CompileResponseHeaderMatchers compiles response matchers (retriable_headers:
// the pseudo-header :status), for MatchAnyResponse.
func CompileResponseHeaderMatchers(field string, hms []HeaderMatcher) (HeaderMatchers, error) {
	return compileMatchers(field, hms, true)
}

func compileMatchers(field string, hms []HeaderMatcher, forResponse bool) (HeaderMatchers, error) {
	out := HeaderMatchers{ms: make([]headerMatcher, len(hms))}
	for i := range hms {
		if err := compileHeaderMatcherFor(fmt.Sprintf("%s[%d]", field, i), &hms[i], &out.ms[i], forResponse); err != nil {
			return HeaderMatchers{}, err
		}
	}
	return out, nil
}

// Len is the number of matchers.
func (m HeaderMatchers) Len() int { return len(m.ms) }

// MatchAll reports whether every matcher accepts the request (true when
// there are none).
func (m HeaderMatchers) MatchAll(r *http.Request) bool {
	for i := range m.ms {
		if !m.ms[i].match(r) {
			return false
		}
	}
	return true
}

// MatchAny reports whether at least one matcher accepts the request.
func (m HeaderMatchers) MatchAny(r *http.Request) bool {
	for i := range m.ms {
		if m.ms[i].match(r) {
			return true
		}
	}
	return false
}

// MatchAnyResponse reports whether at least one matcher (compiled by
// CompileResponseHeaderMatchers) accepts a response with these headers and
// status.
func (m HeaderMatchers) MatchAnyResponse(h http.Header, status int) bool {
	for i := range m.ms {
		hm := &m.ms[i]
		var v string
		var ok bool
		switch hm.pseudo {
		case pseudoStatus:
			v, ok = strconv.Itoa(status), true
		case pseudoNone:
			switch vs := h[hm.key]; len(vs) {
			case 0:
			case 1:
				v, ok = vs[0], true
			default:
				v, ok = strings.Join(vs, ","), true
			}
		}
		if hm.matchValue(v, ok) {
			return true
		}
	}
	return false
}

// retryMatchers are a RetryPolicy's compiled header matchers.
type retryMatchers struct{ resp, req HeaderMatchers }

// Compile checks and compiles the policy's retriable_headers and
// retriable_request_headers; the converter calls it once before the policy
// is shared. Errors name the fields under field.
func (rp *RetryPolicy) Compile(field string) error {
	resp, err := CompileResponseHeaderMatchers(join(field, "retriable_headers"), rp.RetriableHeaders)
	if err != nil {
		return err
	}
	req, err := CompileHeaderMatchers(join(field, "retriable_request_headers"), rp.RetriableRequestHeaders)
	if err != nil {
		return err
	}
	rp.matchers = &retryMatchers{resp: resp, req: req}
	return nil
}

// Matchers returns the compiled retriable_headers and
// retriable_request_headers; a policy never compiled (built by hand) is
// compiled on each call, invalid matchers matching nothing.
func (rp *RetryPolicy) Matchers() (resp, req HeaderMatchers) {
	if m := rp.matchers; m != nil {
		return m.resp, m.req
	}
	resp, _ = CompileResponseHeaderMatchers("", rp.RetriableHeaders)
	req, _ = CompileHeaderMatchers("", rp.RetriableRequestHeaders)
	return resp, req
}
