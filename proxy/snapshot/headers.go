package snapshot

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/outrigger-mesh/outrigger/proxy/router"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// headerEdits converts the four headers_to_add/remove lists found at the
// route table, virtual host, route and weighted-cluster levels.
func (c *converter) headerEdits(p string, reqAdd []*corev3.HeaderValueOption, reqRemove []string,
	respAdd []*corev3.HeaderValueOption, respRemove []string) router.HeaderEdits {
	return router.HeaderEdits{
		RequestAdd:     c.headerValues(resource.Join(p, "request_headers_to_add"), reqAdd),
		RequestRemove:  lower(reqRemove),
		ResponseAdd:    c.headerValues(resource.Join(p, "response_headers_to_add"), respAdd),
		ResponseRemove: lower(respRemove),
	}
}

func (c *converter) headerValues(p string, opts []*corev3.HeaderValueOption) []router.HeaderValue {
	var out []router.HeaderValue
	for i, o := range opts {
		op := resource.Index(p, i)
		hv := router.HeaderValue{Append: true} // Envoy's default: APPEND_IF_EXISTS_OR_ADD
		hv.Name, hv.Value = c.literalHeader(op, o.GetHeader())
		if o.GetAppend() != nil {
			if o.GetAppendAction() != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
				c.fail(resource.Join(op, "append"), "append and append_action cannot both be set")
			}
			hv.Append = o.GetAppend().GetValue()
		}
		switch o.GetAppendAction() {
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			hv.Append, hv.AddIfAbsent = false, true
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			hv.Append = false
		}
		out = append(out, hv)
	}
	return out
}

// literalHeader converts the header of the HeaderValueOption at op: the
// name lower-cased, and value or raw_value (not both) with %% resolved to
// %; a command operator (a lone %), which would need a formatter, is
// refused.
func (c *converter) literalHeader(op string, h *corev3.HeaderValue) (name, value string) {
	raw := h.GetValue()
	vp := resource.Join(op, "header.value")
	if rv := h.GetRawValue(); len(rv) > 0 {
		if raw != "" {
			c.fail(resource.Join(op, "header"), "only one of value and raw_value may be set")
		}
		raw, vp = string(rv), resource.Join(op, "header.raw_value")
	}
	value, ok := literalHeaderValue(raw)
	if !ok {
		c.fail(vp, "%q uses %% command operators, which are not supported yet (write %%%% for a literal %%)", raw)
	}
	return strings.ToLower(h.GetKey()), value
}

// literalHeaderValue resolves %% to % and reports false when the value
// holds a command operator (a lone %), which would need a formatter.
func literalHeaderValue(v string) (string, bool) {
	if !strings.Contains(v, "%") {
		return v, true
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		if i+1 < len(v) && v[i+1] == '%' {
			b.WriteByte('%')
			i++
			continue
		}
		return v, false
	}
	return b.String(), true
}

func lower(names []string) []string {
	if len(names) == 0 {
		return nil
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.ToLower(n)
	}
	return out
}
