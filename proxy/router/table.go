package router

import (
	"net/http"
	"sort"
	"strings"
)

// Table is a validated route table with every matcher precomputed. It is
// immutable after New and safe for concurrent use; Match allocates nothing
// for the common cases (lower-case authority, prefix/path/header matches on
// single-valued headers).
//
// The *Route, *VirtualHost and *WeightedCluster values it hands out point
// into the Table's own copy of the configuration: treat them as read-only.
// Values behind pointers in the Config given to New (actions, regexps) are
// shared, not copied, and must not be changed after New either.
type Table struct {
	cfg    Config
	vhosts []vhostMatcher

	// Virtual host lookup, in Envoy's order: exact, then the longest suffix
	// wildcard ("*.example.com"), then the longest prefix wildcard
	// ("example.*"), then "*".
	exact    map[string]*vhostMatcher
	suffixes []wildcardSet // longest first
	prefixes []wildcardSet // longest first
	any      *vhostMatcher
}

type vhostMatcher struct {
	vh     *VirtualHost
	routes []routeMatcher
}

// wildcardSet holds the wildcard domains whose fixed part has length n,
// keyed by that fixed part (Envoy's per-length maps): one map lookup per
// distinct length instead of a scan over every wildcard.
type wildcardSet struct {
	n int
	// withPort: the fixed part names a port, so it is compared with the
	// full authority rather than the authority without its port.
	withPort bool
	domains  map[string]*vhostMatcher
}

// New validates cfg and builds its Table. Errors are *ConfigError (and match
// ErrInvalidConfig) naming the offending field.
func New(cfg *Config) (*Table, error) {
	if cfg == nil {
		return nil, cfgErr("", "no route configuration")
	}
	t := &Table{cfg: cloneConfig(cfg), exact: make(map[string]*vhostMatcher)}
	if err := checkHeaderEdits("", &t.cfg.Headers); err != nil {
		return nil, err
	}
	b := domainBuilder{t: t, seen: make(map[string]string)}
	names := make(map[string]int)
	t.vhosts = make([]vhostMatcher, len(t.cfg.VirtualHosts))
	for i := range t.cfg.VirtualHosts {
		vh := &t.cfg.VirtualHosts[i]
		field := idx("", "virtual_hosts", i)
		if vh.Name != "" {
			if prev, dup := names[vh.Name]; dup {
				return nil, cfgErr(join(field, "name"), "virtual host name %q is also used by virtual_hosts[%d]", vh.Name, prev)
			}
			names[vh.Name] = i
		}
		vm := &t.vhosts[i]
		vm.vh = vh
		if len(vh.Domains) == 0 {
			return nil, cfgErr(join(field, "domains"), "at least one domain is required")
		}
		for j, d := range vh.Domains {
			if err := b.add(vm, d, idx(field, "domains", j)); err != nil {
				return nil, err
			}
		}
		if err := checkHeaderEdits(field, &vh.Headers); err != nil {
			return nil, err
		}
		vm.routes = make([]routeMatcher, len(vh.Routes))
		for j := range vh.Routes {
			rf := idx(field, "routes", j)
			rt := &vh.Routes[j]
			if err := checkRoute(rf, rt); err != nil {
				return nil, err
			}
			if err := compileRoute(rf, rt, &vm.routes[j]); err != nil {
				return nil, err
			}
		}
	}
	t.suffixes = b.sets(b.suffixes)
	t.prefixes = b.sets(b.prefixes)
	return t, nil
}

// Name is the route configuration's name.
func (t *Table) Name() string { return t.cfg.Name }

// Config is the Table's own copy of its configuration (read-only), for
// config dumps.
func (t *Table) Config() *Config { return &t.cfg }

// Headers are the configuration-level header edits, applied after the
// virtual host's (see ApplyRequestEdits).
func (t *Table) Headers() *HeaderEdits { return &t.cfg.Headers }

// Match finds the virtual host for r's authority and the first of its
// routes whose match accepts r. The route is nil when the virtual host has
// no matching route; both are nil when no virtual host matches.
//
// Paths are matched as sent on the wire (r.URL.EscapedPath(), no query):
// "/a%2Fb" does not match the prefix "/a/", as in Envoy without path
// normalisation.
func (t *Table) Match(r *http.Request) (*Route, *VirtualHost) {
	vm := t.findVirtualHost(authority(r))
	if vm == nil {
		return nil, nil
	}
	path := RequestPath(r)
	for i := range vm.routes {
		if vm.routes[i].matches(r, path) {
			return vm.routes[i].route, vm.vh
		}
	}
	return nil, vm.vh
}

// VirtualHost returns the virtual host serving authority (a Host header or
// :authority value, port optional), or nil.
func (t *Table) VirtualHost(authority string) *VirtualHost {
	if vm := t.findVirtualHost(authority); vm != nil {
		return vm.vh
	}
	return nil
}

func (t *Table) findVirtualHost(authority string) *vhostMatcher {
	if len(t.exact) == 0 && len(t.suffixes) == 0 && len(t.prefixes) == 0 {
		return t.any // only a "*" virtual host (or none): no need to look
	}
	// Host names are case-insensitive, in ASCII only (as in Envoy);
	// lowerASCII returns its argument without allocating when there is
	// nothing to lower.
	host := lowerASCII(authority)
	bare := stripPort(host)
	if vm := t.exact[host]; vm != nil {
		return vm
	}
	if len(bare) != len(host) {
		if vm := t.exact[bare]; vm != nil {
			return vm
		}
	}
	for i := range t.suffixes {
		s := &t.suffixes[i]
		h := bare
		if s.withPort {
			h = host
		}
		// The wildcard must stand for at least one character.
		if len(h) > s.n {
			if vm := s.domains[h[len(h)-s.n:]]; vm != nil {
				return vm
			}
		}
	}
	for i := range t.prefixes {
		p := &t.prefixes[i]
		h := bare
		if p.withPort {
			h = host
		}
		if len(h) > p.n {
			if vm := p.domains[h[:p.n]]; vm != nil {
				return vm
			}
		}
	}
	return t.any
}

// authority is the request's :authority (Host for HTTP/1.1).
func authority(r *http.Request) string {
	if r.Host != "" {
		return r.Host
	}
	if r.URL != nil {
		return r.URL.Host
	}
	return ""
}

// lowerASCII lowers ASCII letters only. strings.ToLower would also fold
// Unicode (the Kelvin sign to "k") and turn every invalid UTF-8 byte into
// U+FFFD, so that distinct authorities would find the same virtual host.
func lowerASCII(s string) string {
	i := 0
	for i < len(s) && !('A' <= s[i] && s[i] <= 'Z') {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if c := b[i]; 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// stripPort removes a trailing ":port" (digits, possibly none) from host,
// leaving an IPv6 literal's brackets alone: "[::1]:80" -> "[::1]".
func stripPort(host string) string {
	i := portStart(host)
	if i < 0 {
		return host
	}
	for j := i + 1; j < len(host); j++ {
		if host[j] < '0' || host[j] > '9' {
			return host
		}
	}
	return host[:i]
}

// portStart is the index of the ':' before a port, or -1; a colon inside an
// IPv6 literal's brackets is not one.
func portStart(host string) int {
	i := strings.LastIndexByte(host, ':')
	if i < 0 || strings.LastIndexByte(host, ']') > i {
		return -1
	}
	return i
}

type domainKey struct {
	n        int
	withPort bool
}

// domainBuilder sorts domains into the Table's lookup structures and
// rejects duplicates across virtual hosts, as Envoy does.
type domainBuilder struct {
	t                  *Table
	seen               map[string]string // lower-cased domain -> field path
	suffixes, prefixes map[domainKey]map[string]*vhostMatcher
}

func (b *domainBuilder) add(vm *vhostMatcher, raw, field string) error {
	d := lowerASCII(raw)
	if d == "" {
		return cfgErr(field, "empty domain")
	}
	for i := 0; i < len(d); i++ {
		if c := d[i]; c <= ' ' || c == 0x7f || c == '/' {
			return cfgErr(field, "domain %q contains an invalid character %q", raw, c)
		}
	}
	if prev, dup := b.seen[d]; dup {
		if d == "*" {
			return cfgErr(field, "only one virtual host may use the domain \"*\" (also at %s)", prev)
		}
		return cfgErr(field, "domain %q is also listed at %s; domains must be unique across virtual hosts", raw, prev)
	}
	b.seen[d] = field
	switch {
	case d == "*":
		b.t.any = vm
	case d[0] == '*':
		fixed := d[1:]
		if strings.Contains(fixed, "*") {
			return cfgErr(field, "domain %q: a wildcard may only be the first or the last character", raw)
		}
		b.suffixes = addWildcard(b.suffixes, fixed, suffixNamesPort(fixed), vm)
	case d[len(d)-1] == '*':
		fixed := d[:len(d)-1]
		if strings.Contains(fixed, "*") {
			return cfgErr(field, "domain %q: a wildcard may only be the first or the last character", raw)
		}
		b.prefixes = addWildcard(b.prefixes, fixed, portStart(fixed) >= 0, vm)
	default:
		if strings.Contains(d, "*") {
			return cfgErr(field, "domain %q: a wildcard may only be the first or the last character", raw)
		}
		b.t.exact[d] = vm
	}
	return nil
}

// suffixNamesPort: "*.example.com:8080" and "*:8080" name a port.
func suffixNamesPort(fixed string) bool {
	i := portStart(fixed)
	return i >= 0 && i+1 < len(fixed) && stripPort(fixed) != fixed
}

func addWildcard(m map[domainKey]map[string]*vhostMatcher, fixed string, withPort bool, vm *vhostMatcher) map[domainKey]map[string]*vhostMatcher {
	if m == nil {
		m = make(map[domainKey]map[string]*vhostMatcher)
	}
	k := domainKey{n: len(fixed), withPort: withPort}
	if m[k] == nil {
		m[k] = make(map[string]*vhostMatcher)
	}
	m[k][fixed] = vm
	return m
}

// sets orders wildcard sets longest first (the longest wildcard wins); at
// equal length a domain naming a port is the more specific one.
func (b *domainBuilder) sets(m map[domainKey]map[string]*vhostMatcher) []wildcardSet {
	out := make([]wildcardSet, 0, len(m))
	for k, domains := range m {
		out = append(out, wildcardSet{n: k.n, withPort: k.withPort, domains: domains})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].n != out[j].n {
			return out[i].n > out[j].n
		}
		return out[i].withPort && !out[j].withPort
	})
	return out
}

// cloneConfig copies everything New may canonicalise or hand out pointers
// into, so the Table never changes the caller's Config and the caller's
// later changes do not reach the Table's slices.
func cloneConfig(cfg *Config) Config {
	c := *cfg
	c.Headers = cloneEdits(cfg.Headers)
	c.VirtualHosts = make([]VirtualHost, len(cfg.VirtualHosts))
	for i, vh := range cfg.VirtualHosts {
		vh.Domains = append([]string(nil), vh.Domains...)
		vh.Headers = cloneEdits(vh.Headers)
		routes := make([]Route, len(vh.Routes))
		for j, rt := range vh.Routes {
			rt.Headers = cloneEdits(rt.Headers)
			if rt.Forward != nil {
				fwd := *rt.Forward
				fwd.WeightedClusters = append([]WeightedCluster(nil), fwd.WeightedClusters...)
				for k := range fwd.WeightedClusters {
					fwd.WeightedClusters[k].Headers = cloneEdits(fwd.WeightedClusters[k].Headers)
				}
				rt.Forward = &fwd
			}
			routes[j] = rt
		}
		vh.Routes = routes
		c.VirtualHosts[i] = vh
	}
	return c
}
