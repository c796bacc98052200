// Package router holds a route table in plain Go types and matches requests
// against it: virtual host by authority, then the first route whose match
// accepts the request. It never sees Envoy protos; proxy/snapshot converts
// RouteConfiguration into Config.
package router

import (
	"regexp"
	"time"
)

// Config is one route table (Envoy's RouteConfiguration).
type Config struct {
	Name         string
	VirtualHosts []VirtualHost
	Headers      HeaderEdits // applied after the route's and the virtual host's
}

// VirtualHost groups routes under a set of domains.
type VirtualHost struct {
	Name string
	// Domains as Envoy spells them: "example.com", "*.example.com",
	// "example.*", "*". Matching ignores a port on the request's authority
	// unless the domain itself names one.
	Domains []string
	Routes  []Route
	Headers HeaderEdits // applied after the route's
}

// Route is one match and what to do when it hits. Exactly one of Forward,
// Direct and Redirect is set.
type Route struct {
	Name     string
	Match    Match
	Forward  *ForwardAction
	Direct   *DirectResponse
	Redirect *Redirect
	Headers  HeaderEdits
}

// Match is a route's request predicate. Exactly one path specifier is set
// (Prefix may be "" meaning "/" when none of the others is set).
type Match struct {
	Prefix              string
	Path                string
	Regex               *regexp.Regexp // safe_regex: must match the whole path
	PathSeparatedPrefix string
	// CaseInsensitive inverts Envoy's case_sensitive (default true).
	CaseInsensitive bool
	Headers         []HeaderMatcher
	QueryParams     []QueryParamMatcher
	GRPC            bool // only requests with content-type application/grpc*
}

// StringMatcher is Envoy's StringMatcher: exactly one of the fields is set
// (Regex non-nil, or Kind naming the form).
type StringMatcher struct {
	Kind       StringMatchKind
	Value      string
	Regex      *regexp.Regexp
	IgnoreCase bool
}

// StringMatchKind says which form a StringMatcher takes.
type StringMatchKind uint8

const (
	StringExact StringMatchKind = iota
	StringPrefix
	StringSuffix
	StringContains
	StringRegex
)

// HeaderMatcher is Envoy's route.HeaderMatcher.
type HeaderMatcher struct {
	Name string // canonical lower-case header name
	// One of: String (string_match or the deprecated exact/prefix/... forms),
	// Present, Range.
	String  *StringMatcher
	Present *bool
	Range   *Int64Range
	Invert  bool
	// TreatMissingAsEmpty makes a missing header match as "".
	TreatMissingAsEmpty bool
}

// Int64Range is [Start, End).
type Int64Range struct{ Start, End int64 }

// QueryParamMatcher is Envoy's QueryParameterMatcher: String set, or
// Present true.
type QueryParamMatcher struct {
	Name    string
	String  *StringMatcher
	Present bool
}

// ForwardAction sends the request to a cluster (Envoy's RouteAction).
type ForwardAction struct {
	// Cluster, or WeightedClusters with their Weights summing to TotalWeight.
	Cluster          string
	WeightedClusters []WeightedCluster
	TotalWeight      uint32

	PrefixRewrite      string
	RegexRewrite       *RegexRewrite
	HostRewriteLiteral string
	AutoHostRewrite    bool

	// Timeout is the whole-request timeout (Envoy default 15s); 0 disables.
	Timeout time.Duration
	// IdleTimeout bounds the time without any stream activity; 0 means the
	// connection manager's stream_idle_timeout applies.
	IdleTimeout time.Duration
}

// WeightedCluster is one leg of a weighted split.
type WeightedCluster struct {
	Name    string
	Weight  uint32
	Headers HeaderEdits // applied with the route's
}

// RegexRewrite replaces every match of Pattern in the path with Substitution
// (Go regexp syntax, \1 written as ${1} by the converter).
type RegexRewrite struct {
	Pattern      *regexp.Regexp
	Substitution string
}

// DirectResponse answers without an upstream.
type DirectResponse struct {
	Status int
	Body   []byte
}

// Redirect answers with a 3xx.
type Redirect struct {
	SchemeRedirect string // "" keeps the request's scheme
	HostRedirect   string
	PortRedirect   uint32
	PathRedirect   string
	PrefixRewrite  string
	StripQuery     bool
	HTTPSRedirect  bool
	Status         int // 301 (default), 302, 303, 307, 308
}

// HeaderEdits are Envoy's request/response headers_to_add/remove.
type HeaderEdits struct {
	RequestAdd     []HeaderValue
	RequestRemove  []string
	ResponseAdd    []HeaderValue
	ResponseRemove []string
}

// HeaderValue is one header to add. Append false overwrites (Envoy's
// OVERWRITE_IF_EXISTS_OR_ADD); AddIfAbsent only adds when missing.
type HeaderValue struct {
	Name        string
	Value       string
	Append      bool
	AddIfAbsent bool
}

// Empty reports whether there is nothing to do.
func (h *HeaderEdits) Empty() bool {
	return len(h.RequestAdd) == 0 && len(h.RequestRemove) == 0 &&
		len(h.ResponseAdd) == 0 && len(h.ResponseRemove) == 0
}
