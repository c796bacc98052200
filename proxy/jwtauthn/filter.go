// Package jwtauthn is Envoy's envoy.filters.http.jwt_authn: it finds JSON
// Web Tokens in requests, verifies them against each provider's issuer,
// audiences, validity window and key set (given inline or fetched through
// a cluster and cached), and answers 401 (403 for a wrong audience) when a
// route's requirement is not met. Signatures are checked by go-jose; this
// package only splits tokens and applies Envoy's rules. It never sees
// Envoy protos: proxy/snapshot builds its Config.
package jwtauthn

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/proxy/forward"
	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// ruleKey is where each rule's verifier sits in its route's PerFilter map
// in the filter's private rule table.
const ruleKey = "envoy.filters.http.jwt_authn.rule"

// maxRealmPath bounds the path in WWW-Authenticate's realm (Envoy's 256).
const maxRealmPath = 256

// ruleEntry is a rule's verifier (allowAll for a rule without requires).
type ruleEntry struct{ v verifier }

// Filter is the jwt_authn filter: an hcm.HTTPFilter and hcm.StatsReporter.
// Remote key sets are fetched through the clusters UseClusters gives it.
type Filter struct {
	name      string
	cfg       *Config
	providers map[string]*provider
	all       []*provider // sorted by name
	rules     *router.Table
	reqs      map[string]verifier
	reqNames  string // for the wrong requirement_name reply
	clusters  atomic.Pointer[Clusters]
	log       atomic.Pointer[hclog.Logger]
	now       func() time.Time

	allowed, denied, fetchOK, fetchFailed, corsBypassed atomic.Uint64
}

// Options are New's optional dependencies.
type Options struct {
	// Logger receives JWKS fetch failures; nil discards them.
	Logger hclog.Logger
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// New validates cfg and builds the filter named name (its name in
// http_filters, under which routes give their PerRoute config).
func New(name string, cfg *Config, o Options) (*Filter, error) {
	if err := cfg.Validate(""); err != nil {
		return nil, err
	}
	f := &Filter{name: name, cfg: cfg, providers: map[string]*provider{}, reqs: map[string]verifier{}, now: o.Now}
	l := o.Logger
	if l == nil {
		l = hclog.NewNullLogger()
	}
	f.log.Store(&l)
	if f.now == nil {
		f.now = time.Now
	}
	names := make([]string, 0, len(cfg.Providers))
	for n := range cfg.Providers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		pc := cfg.Providers[n]
		p := &provider{name: n, cfg: pc, skew: pc.ClockSkew}
		if p.skew == 0 {
			p.skew = DefaultClockSkew
		}
		if pc.LocalJWKS != nil {
			p.local, _ = parseJWKS(pc.LocalJWKS) // Validate parsed it
		}
		if pc.Remote != nil {
			u, err := url.Parse(pc.Remote.URI)
			if err != nil || u.Host == "" {
				return nil, fmt.Errorf("providers[%q].remote_jwks.http_uri.uri: %q is not a URL with a host", n, pc.Remote.URI)
			}
			p.remote = &remoteKeys{cfg: *pc.Remote, uri: u, filter: f}
		}
		f.providers[n] = p
		f.all = append(f.all, p)
	}
	rc := &router.Config{VirtualHosts: []router.VirtualHost{{Name: "rules", Domains: []string{"*"}}}}
	for _, rule := range cfg.Rules {
		var v verifier = allowAll{}
		if rule.Requires != nil {
			v = f.compile(rule.Requires, nil)
		}
		rc.VirtualHosts[0].Routes = append(rc.VirtualHosts[0].Routes, router.Route{
			Match:     rule.Match,
			Direct:    &router.DirectResponse{Status: http.StatusOK}, // unused: the table only matches
			PerFilter: map[string]any{ruleKey: &ruleEntry{v: v}},
		})
	}
	t, err := router.New(rc)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	f.rules = t
	keys := make([]string, 0, len(cfg.RequirementMap))
	for k, req := range cfg.RequirementMap {
		f.reqs[k] = f.compile(req, nil)
		keys = append(keys, k)
	}
	sort.Strings(keys)
	f.reqNames = strings.Join(keys, ",")
	return f, nil
}

// UseClusters gives the filter the clusters it fetches remote key sets
// through, and starts the fetches of providers with async_fetch.
func (f *Filter) UseClusters(c Clusters) {
	if c == nil {
		return
	}
	f.clusters.Store(&c)
	for _, p := range f.all {
		if p.remote != nil && p.remote.cfg.AsyncFetch && p.remote.cur.Load() == nil {
			p.remote.start()
		}
	}
}

// Decode checks the request against its route's requirement.
func (f *Filter) Decode(w http.ResponseWriter, r *http.Request, in *hcm.FilterInput) hcm.Verdict {
	if f.cfg.BypassCORSPreflight && isCORSPreflight(r) {
		f.corsBypassed.Add(1)
		f.allowed.Add(1)
		return hcm.Verdict{}
	}
	var v verifier
	if pr, ok := perRoute(in, f.name); ok {
		if pr.Disabled {
			f.allowed.Add(1)
			return hcm.Verdict{}
		}
		if v, ok = f.reqs[pr.RequirementName]; !ok {
			f.denied.Add(1)
			body := ""
			if !f.cfg.StripFailureResponse {
				body = fmt.Sprintf("Failed JWT authentication: Wrong requirement_name: %s. It should be one of [%s]", pr.RequirementName, f.reqNames)
			}
			status, gs := forward.WriteReply(w, r, http.StatusForbidden, body)
			return hcm.Verdict{Status: status, GRPCStatus: gs}
		}
	} else if rt, _ := f.rules.Match(r); rt != nil {
		v = rt.PerFilter[ruleKey].(*ruleEntry).v
	}
	if v == nil {
		f.allowed.Add(1)
		return hcm.Verdict{}
	}
	st := v.verify(f, r)
	if st == OK {
		f.allowed.Add(1)
		return hcm.Verdict{}
	}
	f.denied.Add(1)
	body := ""
	if !f.cfg.StripFailureResponse {
		body = st.String()
		realm := `Bearer realm="` + originalURI(r) + `"`
		if st != JwtMissed {
			realm += `, error="invalid_token"`
		}
		w.Header().Set("Www-Authenticate", realm)
	}
	status, gs := forward.WriteReply(w, r, st.HTTPStatus(), body)
	return hcm.Verdict{Status: status, GRPCStatus: gs}
}

// perRoute is the route's PerRoute config for the filter named name.
func perRoute(in *hcm.FilterInput, name string) (*PerRoute, bool) {
	if in == nil {
		return nil, false
	}
	pr, ok := in.PerRoute(name).(*PerRoute)
	return pr, ok && pr != nil
}

// originalURI is Envoy's realm: scheme://host/path, the path cut at 256
// bytes.
func originalURI(r *http.Request) string {
	scheme := r.Header.Get("X-Forwarded-Proto")
	if scheme == "" {
		scheme = "http"
		if r.TLS != nil {
			scheme = "https"
		}
	}
	path := r.RequestURI
	if path == "" && r.URL != nil {
		path = r.URL.RequestURI()
	}
	if len(path) > maxRealmPath {
		path = path[:maxRealmPath]
	}
	// A quote or control byte would end the quoted realm early.
	path = strings.Map(func(c rune) rune {
		if c == '"' || c == '\\' || c < 0x20 || c == 0x7f {
			return -1
		}
		return c
	}, path)
	host := strings.Map(func(c rune) rune {
		if c == '"' || c == '\\' || c < 0x20 || c == 0x7f {
			return -1
		}
		return c
	}, r.Host)
	return scheme + "://" + host + path
}

// isCORSPreflight is an OPTIONS request with Origin and
// Access-Control-Request-Method.
func isCORSPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" &&
		r.Header.Get("Access-Control-Request-Method") != ""
}

// Stats returns jwt_authn.allowed, .denied, .jwks_fetch_success,
// .jwks_fetch_failed and .cors_preflight_bypassed.
func (f *Filter) Stats() map[string]uint64 {
	return map[string]uint64{
		"jwt_authn.allowed":                 f.allowed.Load(),
		"jwt_authn.denied":                  f.denied.Load(),
		"jwt_authn.jwks_fetch_success":      f.fetchOK.Load(),
		"jwt_authn.jwks_fetch_failed":       f.fetchFailed.Load(),
		"jwt_authn.cors_preflight_bypassed": f.corsBypassed.Load(),
	}
}

func (f *Filter) logFetchError(uri string, err error) {
	(*f.log.Load()).Warn("jwks fetch failed", "uri", uri, "error", err)
}

// SetLogger replaces the logger of JWKS fetch failures (the proxy hands
// each filter its own).
func (f *Filter) SetLogger(l hclog.Logger) { f.log.Store(&l) }
