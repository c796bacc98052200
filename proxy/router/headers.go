package router

import (
	"net/http"
	"net/textproto"
)

// ApplyRequestEdits applies request header edits level by level, in the
// order given. Pass them most specific first, as Envoy evaluates them by
// default (most_specific_header_mutations_wins: false): the weighted
// cluster's, then the route's, then the virtual host's, then the route
// configuration's. A later level therefore has the last word: a
// configuration-level overwrite beats a route-level one, and a
// configuration-level remove deletes a header a route added.
//
// Within one level, as in Envoy's HeaderParser:
//   - removes run first;
//   - AddIfAbsent looks at the headers as they are after the removes, before
//     any add of the same level;
//   - overwrites (Append false) are applied next, then appends;
//   - a value that is empty is skipped (Envoy's keep_empty_value default).
//
// Nil edits are skipped. Names are canonicalised; edits from a Table already
// are, so this allocates only for the header values it stores.
func ApplyRequestEdits(h http.Header, edits ...*HeaderEdits) {
	for _, e := range edits {
		if e != nil {
			applyLevel(h, e.RequestRemove, e.RequestAdd)
		}
	}
}

// ApplyResponseEdits is ApplyRequestEdits for the response headers of the
// same levels, in the same order.
func ApplyResponseEdits(h http.Header, edits ...*HeaderEdits) {
	for _, e := range edits {
		if e != nil {
			applyLevel(h, e.ResponseRemove, e.ResponseAdd)
		}
	}
}

// EditRequest applies every level's request edits for a match, in Envoy's
// order: wc (may be nil), rt, vh, then the configuration's.
func (t *Table) EditRequest(h http.Header, vh *VirtualHost, rt *Route, wc *WeightedCluster) {
	for _, e := range t.levels(vh, rt, wc) {
		if e != nil {
			applyLevel(h, e.RequestRemove, e.RequestAdd)
		}
	}
}

// EditResponse is EditRequest for the response headers.
func (t *Table) EditResponse(h http.Header, vh *VirtualHost, rt *Route, wc *WeightedCluster) {
	for _, e := range t.levels(vh, rt, wc) {
		if e != nil {
			applyLevel(h, e.ResponseRemove, e.ResponseAdd)
		}
	}
}

func (t *Table) levels(vh *VirtualHost, rt *Route, wc *WeightedCluster) [4]*HeaderEdits {
	var l [4]*HeaderEdits
	if wc != nil {
		l[0] = &wc.Headers
	}
	if rt != nil {
		l[1] = &rt.Headers
	}
	if vh != nil {
		l[2] = &vh.Headers
	}
	l[3] = &t.cfg.Headers
	return l
}

func applyLevel(h http.Header, removes []string, adds []HeaderValue) {
	for _, name := range removes {
		delete(h, textproto.CanonicalMIMEHeaderKey(name))
	}
	if len(adds) == 0 {
		return
	}
	// Decide every AddIfAbsent before any add of this level runs, as Envoy
	// evaluates the whole level against the same headers.
	var absentBits uint64
	var absentMore []bool
	if len(adds) > 64 {
		absentMore = make([]bool, len(adds))
	}
	for i := range adds {
		hv := &adds[i]
		if !hv.AddIfAbsent || hv.Value == "" {
			continue
		}
		if len(h[textproto.CanonicalMIMEHeaderKey(hv.Name)]) == 0 {
			if absentMore != nil {
				absentMore[i] = true
			} else {
				absentBits |= 1 << i
			}
		}
	}
	for i := range adds {
		hv := &adds[i]
		if !hv.Append && !hv.AddIfAbsent && hv.Value != "" {
			h[textproto.CanonicalMIMEHeaderKey(hv.Name)] = []string{hv.Value}
		}
	}
	for i := range adds {
		hv := &adds[i]
		if hv.Value == "" {
			continue
		}
		add := hv.Append
		if hv.AddIfAbsent {
			if absentMore != nil {
				add = absentMore[i]
			} else {
				add = absentBits&(1<<i) != 0
			}
		}
		if add {
			k := textproto.CanonicalMIMEHeaderKey(hv.Name)
			h[k] = append(h[k], hv.Value)
		}
	}
}

// cloneEdits copies the slices of e with canonical header names, so the
// hot path never canonicalises and the caller's Config stays untouched.
func cloneEdits(e HeaderEdits) HeaderEdits {
	out := HeaderEdits{
		RequestAdd:     append([]HeaderValue(nil), e.RequestAdd...),
		RequestRemove:  append([]string(nil), e.RequestRemove...),
		ResponseAdd:    append([]HeaderValue(nil), e.ResponseAdd...),
		ResponseRemove: append([]string(nil), e.ResponseRemove...),
	}
	for _, adds := range [][]HeaderValue{out.RequestAdd, out.ResponseAdd} {
		for i := range adds {
			adds[i].Name = textproto.CanonicalMIMEHeaderKey(adds[i].Name)
		}
	}
	for _, rms := range [][]string{out.RequestRemove, out.ResponseRemove} {
		for i := range rms {
			rms[i] = textproto.CanonicalMIMEHeaderKey(rms[i])
		}
	}
	return out
}

// checkHeaderEdits validates one level's edits; field is the level's path
// ("" for the configuration itself).
func checkHeaderEdits(field string, e *HeaderEdits) error {
	for _, side := range []struct {
		add, remove string
		adds        []HeaderValue
		removes     []string
	}{
		{"request_headers_to_add", "request_headers_to_remove", e.RequestAdd, e.RequestRemove},
		{"response_headers_to_add", "response_headers_to_remove", e.ResponseAdd, e.ResponseRemove},
	} {
		for i := range side.adds {
			hv := &side.adds[i]
			f := idx(field, side.add, i)
			if err := checkEditName(join(f, "header.key"), hv.Name, "added"); err != nil {
				return err
			}
			if !validHeaderValue(hv.Value) {
				return cfgErr(join(f, "header.value"), "value for %q contains CR, LF or NUL", hv.Name)
			}
			if hv.Append && hv.AddIfAbsent {
				return cfgErr(join(f, "append_action"), "append and add-if-absent are exclusive")
			}
		}
		for i, name := range side.removes {
			if err := checkEditName(idx(field, side.remove, i), name, "removed"); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkEditName applies Envoy's rule: pseudo-headers and host may be
// neither added nor removed by header edits.
func checkEditName(field, name, verb string) error {
	lower := lowerASCII(name)
	if lower == "" {
		return cfgErr(field, "header name is required")
	}
	if lower[0] == ':' || lower == "host" {
		return cfgErr(field, "%q may not be %s (pseudo-headers and host cannot be edited; use host_rewrite_literal)", name, verb)
	}
	if !validHeaderName(lower) {
		return cfgErr(field, "invalid header name %q", name)
	}
	return nil
}
