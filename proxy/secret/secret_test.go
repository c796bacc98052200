package secret

import (
	"crypto/x509"
	"regexp"
	"testing"
)

func TestStringMatcher(t *testing.T) {
	for _, tt := range []struct {
		name string
		m    StringMatcher
		in   string
		want bool
	}{
		{"exact", StringMatcher{Kind: MatchExact, Value: webID}, webID, true},
		{"exact other", StringMatcher{Kind: MatchExact, Value: webID}, apiID, false},
		{"exact ignore case", StringMatcher{Kind: MatchExact, Value: "SPIFFE://X", IgnoreCase: true}, "spiffe://x", true},
		{"prefix", StringMatcher{Kind: MatchPrefix, Value: "spiffe://11111111-2222-3333-4444-555555555555.consul/"}, apiID, true},
		{"suffix", StringMatcher{Kind: MatchSuffix, Value: "/svc/web"}, webID, true},
		{"suffix miss", StringMatcher{Kind: MatchSuffix, Value: "/svc/web"}, apiID, false},
		{"contains", StringMatcher{Kind: MatchContains, Value: "/dc/dc1/"}, webID, true},
		{"regex whole", StringMatcher{Kind: MatchRegex, Regex: regexp.MustCompile(`^(?:spiffe://[^/]+/ns/default/dc/dc1/svc/(web|api))$`)}, apiID, true},
		{"regex no match", StringMatcher{Kind: MatchRegex, Regex: regexp.MustCompile(`^(?:svc/web)$`)}, webID, false},
		{"regex nil", StringMatcher{Kind: MatchRegex}, webID, false},
		{"unknown kind", StringMatcher{Kind: 42}, webID, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.Matches(tt.in); got != tt.want {
				t.Fatalf("Matches(%q) = %v, want %v", tt.in, got, tt.want)
			}
			if tt.m.String() == "" {
				t.Fatal("empty String()")
			}
		})
	}
}

func TestSANMatcher(t *testing.T) {
	ca := newCA(t, "ca")
	cert := ca.leaf(t, webID, "*.web.example", "ops@example.com", "10.0.0.7").Leaf
	exact := func(v string) StringMatcher { return StringMatcher{Kind: MatchExact, Value: v} }
	for _, tt := range []struct {
		name string
		m    SANMatcher
		want bool
	}{
		{"URI", SANMatcher{SANURI, exact(webID)}, true},
		{"URI other", SANMatcher{SANURI, exact(apiID)}, false},
		{"DNS wildcard covers one label", SANMatcher{SANDNS, exact("a.web.example")}, true},
		{"DNS wildcard not two labels", SANMatcher{SANDNS, exact("a.b.web.example")}, false},
		{"DNS wildcard not the bare domain", SANMatcher{SANDNS, exact("web.example")}, false},
		{"DNS suffix", SANMatcher{SANDNS, StringMatcher{Kind: MatchSuffix, Value: ".web.example"}}, true},
		{"EMAIL", SANMatcher{SANEmail, exact("ops@example.com")}, true},
		{"IP", SANMatcher{SANIP, exact("10.0.0.7")}, true},
		{"IP other", SANMatcher{SANIP, exact("10.0.0.8")}, false},
		{"type matters", SANMatcher{SANDNS, exact(webID)}, false},
		{"unknown type", SANMatcher{Type: 9, Match: exact(webID)}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.Matches(cert); got != tt.want {
				t.Fatalf("Matches = %v, want %v", got, tt.want)
			}
		})
	}
	for _, ty := range []SANType{SANURI, SANDNS, SANEmail, SANIP, 9} {
		if ty.String() == "" {
			t.Fatal("empty SANType name")
		}
	}
}

func TestValidationMerge(t *testing.T) {
	a, b := x509.NewCertPool(), x509.NewCertPool()
	web := SANMatcher{SANURI, StringMatcher{Value: webID}}
	api := SANMatcher{SANURI, StringMatcher{Value: apiID}}
	def := &Validation{Roots: a, SANs: []SANMatcher{web}}
	if got := (*Validation)(nil).Merge(def); got != def {
		t.Fatal("nil.Merge(def) is not def")
	}
	if got := def.Merge(nil); got != def {
		t.Fatal("def.Merge(nil) is not def")
	}
	m := def.Merge(&Validation{SANs: []SANMatcher{api}})
	if m.Roots != a || len(m.SANs) != 2 {
		t.Fatalf("merge without roots: roots %p, SANs %d", m.Roots, len(m.SANs))
	}
	if m := def.Merge(&Validation{Roots: b}); m.Roots != b || len(m.SANs) != 1 {
		t.Fatal("the secret's roots must replace the default's")
	}
	if len(def.SANs) != 1 {
		t.Fatal("Merge modified its receiver")
	}
}
