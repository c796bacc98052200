package translate

import (
	"regexp"

	"github.com/hashicorp/consul/api"
)

// The checks below catch, with the config entry named, what Envoy or gRPC
// would reject later without saying which entry caused it.

// checkLB rejects load balancer settings Envoy would refuse.
func checkLB(ref entryRef, lb *api.LoadBalancer) error {
	if lb == nil {
		return nil
	}
	switch lb.Policy {
	case "", "round_robin", "random", "least_request", "ring_hash", "maglev":
	default:
		return entryErr(ref, "load balancer policy %q is not one of round_robin, least_request, random, ring_hash, maglev", lb.Policy)
	}
	if rh := lb.RingHashConfig; rh != nil && rh.MaximumRingSize != 0 && rh.MinimumRingSize > rh.MaximumRingSize {
		return entryErr(ref, "ring hash minimum size %d is above the maximum %d", rh.MinimumRingSize, rh.MaximumRingSize)
	}
	if lr := lb.LeastRequestConfig; lr != nil && lr.ChoiceCount == 1 {
		return entryErr(ref, "least_request choice_count must be at least 2")
	}
	for i, hp := range lb.HashPolicies {
		switch {
		case hp.SourceIP:
		case hp.Field == "header" || hp.Field == "cookie" || hp.Field == "query_parameter":
			if hp.FieldValue == "" {
				return entryErr(ref, "hash policy %d: field %s needs a field_value", i, hp.Field)
			}
		default:
			return entryErr(ref, "hash policy %d: field %q is not one of header, cookie, query_parameter (or source_ip)", i, hp.Field)
		}
	}
	return nil
}

// checkMatch rejects route matches Envoy would refuse or Consul would not
// have stored: bad regular expressions and empty header or query matchers.
func checkMatch(ref entryRef, i int, m *api.ServiceRouteMatch) error {
	if m == nil || m.HTTP == nil {
		return nil
	}
	h := m.HTTP
	if n := countSet(h.PathExact != "", h.PathPrefix != "", h.PathRegex != ""); n > 1 {
		return entryErr(ref, "route %d: set only one of path_exact, path_prefix, path_regex", i)
	}
	if err := checkRegex(h.PathRegex); err != nil {
		return entryErr(ref, "route %d: path_regex: %v", i, err)
	}
	for _, hd := range h.Header {
		if hd.Name == "" {
			return entryErr(ref, "route %d: a header match needs a name", i)
		}
		if n := countSet(hd.Present, hd.Exact != "", hd.Prefix != "", hd.Suffix != "", hd.Regex != ""); n != 1 {
			return entryErr(ref, "route %d: header %q: set exactly one of present, exact, prefix, suffix, regex", i, hd.Name)
		}
		if err := checkRegex(hd.Regex); err != nil {
			return entryErr(ref, "route %d: header %q regex: %v", i, hd.Name, err)
		}
	}
	for _, q := range h.QueryParam {
		if q.Name == "" {
			return entryErr(ref, "route %d: a query_param match needs a name", i)
		}
		if n := countSet(q.Present, q.Exact != "", q.Regex != ""); n != 1 {
			return entryErr(ref, "route %d: query_param %q: set exactly one of present, exact, regex", i, q.Name)
		}
		if err := checkRegex(q.Regex); err != nil {
			return entryErr(ref, "route %d: query_param %q regex: %v", i, q.Name, err)
		}
	}
	for _, meth := range h.Methods {
		if meth == "" || regexp.QuoteMeta(meth) != meth {
			return entryErr(ref, "route %d: %q is not an HTTP method", i, meth)
		}
	}
	return nil
}

// checkRegex compiles a pattern the way Envoy would (RE2; Go's regexp is
// RE2 syntax).
func checkRegex(re string) error {
	if re == "" {
		return nil
	}
	_, err := regexp.Compile(re)
	return err
}

func countSet(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}
